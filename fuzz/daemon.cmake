# Host daemon parsers (src/daemon).
pinata_fuzzer(manifest LIBS pinata_daemon)
