# virtio-blk fuzz targets (src/blk/).
if(TARGET pinata_blk)
  pinata_fuzzer(blk_request LIBS pinata_blk pinata_vhost_testing)
endif()
