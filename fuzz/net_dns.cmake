# DNS responder of pinata-net (src/net/dns.h); pinata_net exists only when src/net is built.
if(TARGET pinata_net)
  pinata_fuzzer(net_dns LIBS pinata_net)
endif()
