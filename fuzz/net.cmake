# vhost-user-net fuzz targets (src/net/); pinata_net exists only when src/net is built.
if(TARGET pinata_net)
  pinata_fuzzer(net_frame LIBS pinata_net pinata_vhost_testing)
endif()
