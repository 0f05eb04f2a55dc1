/* Placeholder until evaluation lands. */
#include <stdio.h>
int cmd_eval(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese eval: not built yet\n"); return 1; }
int cmd_embed(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese embed: not built yet\n"); return 1; }
int cmd_export(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese export: not built yet\n"); return 1; }
