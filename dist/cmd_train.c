/* cmd_train: `siamese train CONFIG [--set section.key=value ...]
 * [--resume auto|PATH] [--debug]`. Works as one plain process, under mpirun
 * and under srun; installs the stop-signal handlers of the checkpoint
 * protocol (SIGTERM, SIGUSR1, SIGINT; a second SIGINT stops at once). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"
#include "watchdog.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: siamese train CONFIG [--set section.key=value ...] [--resume auto|PATH] [--debug]\n"
        "       siamese train --schema\n"
        "\n"
        "Trains the model of CONFIG (INI; see docs/config.md). Runs as one process,\n"
        "or under mpirun -np N / srun --mpi=pmix: every rank reads its slice of each global batch.\n"
        "\n"
        "  --set section.key=value  override a config key (layer keys by layer name: conv1.filters=16);\n"
        "                           repeatable\n"
        "  --resume auto|PATH       continue from the newest valid checkpoint of the run dir (auto: start\n"
        "                           fresh if there is none) or from PATH\n"
        "  --debug                  gradient check of the real model at the first step, replica checksum\n"
        "                           every step\n"
        "  --schema                 print every config key (section, type, range, default) as Markdown\n"
        "\n"
        "Writes into [run] dir: config.ini, metrics.csv, timing.csv, ranks.csv, command.log,\n"
        "ckpt-<step>.smpi, model.smpi, eval.json. Exit status: 0 done, %d stopped by\n"
        "SIGTERM/SIGUSR1/SIGINT after writing a checkpoint (resume with --resume auto), %d a rank\n"
        "stopped making progress for [dist] timeout (resume with --resume auto), 1 fatal error,\n"
        "2 bad arguments or config.\n",
        TRAIN_EXIT_RESUME, WATCHDOG_EXIT);
}

static volatile sig_atomic_t sigint_count = 0;

static void on_signal(int sig) {
    if (sig == SIGINT && ++sigint_count > 1) {
        static const char msg[] = "siamese: second SIGINT, stopping now without a checkpoint\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(130);
    }
    train_stop_requested = 1;
}

#define SHELL_PLAIN "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=:,+-"

/* argv as one shell-quoted line (arguments with other than [A-Za-z0-9_./=:,+-]
 * in single quotes). Caller frees. */
static char *command_line(int argc, char **argv) {
    size_t cap = 16;
    for (int i = 0; i < argc; i++) cap += 4 * strlen(argv[i]) + 3;
    char *s = xmalloc(cap), *p = s;
    p += sprintf(p, "siamese");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = a[0] != 0 && a[strspn(a, SHELL_PLAIN)] == 0;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (; *a; a++) p += *a == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *a);
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

int cmd_train(int argc, char **argv) {
    TrainOptions o = {0};
    char *command = command_line(argc, argv);
    o.command = command;
    o.sets = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(o.sets);
            free(command);
            return 0;
        } else if (!strcmp(argv[i], "--schema")) {
            config_print_schema(stdout);
            free(o.sets);
            free(command);
            return 0;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            o.sets[o.nsets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            o.sets[o.nsets++] = argv[i] + 6;
        } else if (!strcmp(argv[i], "--resume") && i + 1 < argc) {
            o.resume = argv[++i];
        } else if (!strcmp(argv[i], "--debug")) {
            o.debug = 1;
        } else if (argv[i][0] == '-' || o.config_path) {
            fprintf(stderr, "siamese train: unexpected argument '%s'; see siamese train --help\n", argv[i]);
            free(o.sets);
            free(command);
            return 2;
        } else {
            o.config_path = argv[i];
        }
    }
    if (!o.config_path) {
        usage(stderr);
        free(o.sets);
        free(command);
        return 2;
    }
    /* Before MPI_Init (a preemption signal may come during start-up) and
     * again after it, so these handlers are the ones in force. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) dist_init(&argc, &argv);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    int rc = train_main(&o);
    dist_finalize();
    free(o.sets);
    free(command);
    return rc;
}
