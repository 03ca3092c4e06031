// An archive member that defines only thread-local data: loaded because main reads it.
__thread int archive_table[4] = {1, 2, 3, 4};
__thread const char *archive_label = "from the archive";
