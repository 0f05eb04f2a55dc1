/* Placeholder until the dataset subcommands land. */
#include <stdio.h>
int cmd_import(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese import: not built yet\n"); return 1; }
int cmd_pairs(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese pairs: not built yet\n"); return 1; }
int cmd_inspect(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese inspect: not built yet\n"); return 1; }
