# 9P2000.L fuzz targets (src/p9/).
if(TARGET pinata_p9)
  pinata_fuzzer(p9_codec LIBS pinata_p9)
endif()
