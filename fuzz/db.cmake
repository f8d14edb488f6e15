# Configuration database parsers (src/db/): the JSON validator (daemon.json comes from users
# and from plain git commits) and the loose-object check that runs before libgit2 reads one.
if(TARGET pinata_db)
  pinata_fuzzer(db_json LIBS pinata_db)
  pinata_fuzzer(db_loose_object LIBS pinata_db)
endif()
