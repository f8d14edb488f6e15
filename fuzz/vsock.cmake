# vsock fuzz targets (src/vsock/).
if(TARGET pinata_vsock)
  pinata_fuzzer(vsock_packet LIBS pinata_vsock)
  pinata_fuzzer(vsock_handshake LIBS pinata_vsock)
endif()
