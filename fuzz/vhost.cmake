# vhost-user fuzz targets (src/vhost/).
pinata_fuzzer(vhost_message LIBS pinata_vhost)
pinata_fuzzer(virtqueue LIBS pinata_vhost)

