/* Placeholder until training lands. */
#include <stdio.h>
int cmd_train(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "siamese train: not built yet\n"); return 1; }
