# Guest-side parsers (src/guest/pinata_guest_core).
if(TARGET pinata_guest_core)
  pinata_fuzzer(dhcp_reply LIBS pinata_guest_core)
  pinata_fuzzer(guest_parsers LIBS pinata_guest_core)
endif()
