# Disk image fuzz targets (src/disk/).
if(TARGET pinata_disk)
  pinata_fuzzer(qcow2 LIBS pinata_disk)
endif()
