# Port-forwarding fuzz targets (src/ports/): the parsers of bytes that cross the VM boundary.
if(TARGET pinata_ports_guest)
  pinata_fuzzer(ports_spec LIBS pinata_ports_guest)
  pinata_fuzzer(ports_header LIBS pinata_ports_guest)
  pinata_fuzzer(ports_frames LIBS pinata_ports_guest)
endif()
