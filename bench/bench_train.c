/* bench_train: times this project's real training step (dist/train.c
 * trainer_step: forward, mining, backward, gradient allreduce, SGD) on a
 * config (default configs/fmnist-triplet.ini) over a few batches of the real
 * dataset, loaded once before timing and then cycled (data loading is not
 * timed, as in bench/torch_ref.py). Runs as 1 process or under mpirun.
 * Driven by bench/perf.py; the modes:
 *   bench_train [options] --windows W --steps S   W timed windows of S steps
 *   bench_train [options] --gate DIR              rank r reads step counts (or
 *       "q") line by line from the FIFO DIR/go.<r>; blocks (no CPU) between
 *       windows so that another program can run alone in between
 *   bench_train [options] --profile S             per-layer profile: median
 *       over S steps of each layer's forward and backward, mining, allreduce,
 *       optimizer; with threads, each layer's share of the threads' time
 *       spent working (nn/parallel's profile: load balance and serial
 *       parts), their wall time not working summed over threads (wait ms:
 *       at the end of runs, for the calling thread's serial work, asleep,
 *       or for a core) and their work in CPU milliseconds (cpu ms: every
 *       thread's CPU time in chunks, the calling thread's outside them;
 *       time other programs take is not in it, so T threads against 1
 *       shows what threading costs even on a loaded machine)
 * Options: --config PATH, --set section.key=value (repeatable), --batches N
 * (distinct batches cycled, default 4), --warmup N (default 5 steps). The
 * threads per rank are the trainer's ([run] threads, SIAMESE_THREADS, ...).
 * Output lines (rank 0): "flops_per_image F" (GEMM work of a training
 * pass), "ready" after the warm-up, "window STEPS SECONDS IMAGES CPU" per
 * window (wall and CPU seconds of the slowest rank), "rss RANK KB"
 * (getrusage ru_maxrss of every rank) at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../dist/train.h"
#include "../nn/blas.h"
#include "../nn/layer.h"
#include "../nn/parallel.h"

#define MAX_SETS 32

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GEMM FLOPs of a node's training pass per row: forward, weight gradient
 * and input gradient (none for a node that reads the model input). */
static double node_train_flops(const ModelLayer *L) {
    return (double)L->flops * (L->in[0].node == MODEL_INPUT ? 2 : 3);
}

/* The same for the whole model, per image. */
static double train_flops_per_image(const Model *m) {
    double f = 0;
    for (int i = 0; i < m->nlayers; i++) f += node_train_flops(&m->layers[i]) / (m->layers[i].halved ? 2 : 1);
    return f;
}

typedef struct Bench {
    Trainer t;
    Batch *b;
    int nb;
    uint64_t k; /* steps run so far */
} Bench;

/* Process CPU time: with other programs sharing the cores it still counts
 * only this program's work (MPI's busy waiting included). */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs steps; returns the wall seconds of the slowest rank, *cpu its CPU
 * seconds (largest over ranks). */
static double run_steps(Bench *s, int steps, double *cpu) {
    dist_barrier();
    double t0 = now_seconds(), c0 = cpu_seconds();
    for (int i = 0; i < steps; i++) {
        StepTimes st;
        trainer_step(&s->t, &s->b[s->k++ % (uint64_t)s->nb], &st);
    }
    double c = cpu_seconds() - c0, w = now_seconds() - t0;
    if (cpu) *cpu = dist_max_double(c);
    return dist_max_double(w);
}

static void profile(Bench *s, int steps) {
    Model *m = &s->t.model;
    int nl = m->nlayers, nphase = 4 * nl + 4, T = s->t.threads;
    double *prof = xcalloc((size_t)6 * nl, sizeof *prof);
    double *all = xcalloc((size_t)(nphase + 2 * nl) * steps, sizeof *all);
    double *tot = xcalloc((size_t)steps, sizeof *tot);
    m->prof = prof;
    m->prof_cpu = prof + 4 * nl;
    parallel_profile(2); /* with the CPU clocks */
    long runs0 = parallel_runs(), wakes0 = parallel_wakes();
    for (int k = 0; k < steps; k++) {
        memset(prof, 0, (size_t)6 * nl * sizeof *prof);
        StepTimes st;
        dist_barrier();
        double t0 = now_seconds();
        trainer_step(&s->t, &s->b[s->k++ % (uint64_t)s->nb], &st);
        tot[k] = now_seconds() - t0;
        for (int j = 0; j < 4 * nl; j++) all[(size_t)j * steps + k] = prof[j];
        double *cpu = all + (size_t)nphase * steps; /* fwd + bwd work CPU per layer */
        for (int i = 0; i < nl; i++)
            cpu[(size_t)i * steps + k] = prof[4 * nl + 2 * i] + prof[4 * nl + 2 * i + 1];
        double *ph = all + (size_t)4 * nl * steps;
        ph[0 * steps + k] = st.mining;
        ph[1 * steps + k] = st.allreduce;
        ph[2 * steps + k] = st.optimizer;
        /* what the layer timers miss: loop, gradient zeroing, bucket hooks */
        double lay = 0;
        for (int j = 0; j < 2 * nl; j++) lay += prof[j];
        ph[3 * steps + k] = st.forward + st.backward - lay;
    }
    parallel_profile(0);
    double runs = (double)(parallel_runs() - runs0) / steps,
           wakes = (double)(parallel_wakes() - wakes0) / steps;
    m->prof = m->prof_cpu = NULL;
    double fl = train_flops_per_image(m);
    int B = s->b[0].lb.n_images;
    if (s->t.rank == 0) {
        printf("profile: median of %d steps, rank 0 of %d, %d images per rank, %d thread%s per rank\n", steps,
               s->t.world, B, T, T > 1 ? "s" : "");
        printf("  %-10s %-8s %10s %10s %9s %8s %8s %8s\n", "layer", "type", "fwd ms", "bwd ms", "GFLOP/s",
               "threads", "wait ms", "cpu ms");
        double sum = 0, cpu_sum = 0, wait_sum = 0;
        for (int i = 0; i < nl; i++) {
            const ModelLayer *L = &m->layers[i];
            /* work / (T x wall) per step, median over steps (before median()
             * sorts the per-step columns) */
            double *use = xcalloc((size_t)steps, sizeof *use), *idle = xcalloc((size_t)steps, sizeof *idle);
            for (int k = 0; k < steps; k++) {
                double w = all[(size_t)(2 * i) * steps + k] + all[(size_t)(2 * i + 1) * steps + k];
                double u =
                    all[(size_t)(2 * nl + 2 * i) * steps + k] + all[(size_t)(2 * nl + 2 * i + 1) * steps + k];
                use[k] = w > 0 ? u / (T * w) : 0;
                idle[k] = T * w - u; /* the threads' wall time not in chunks: waiting */
            }
            double f = median(all + (size_t)(2 * i) * steps, steps);
            double b = median(all + (size_t)(2 * i + 1) * steps, steps);
            double um = median(use, steps);
            double cm = median(all + (size_t)(nphase + i) * steps, steps), wm = median(idle, steps);
            free(use);
            free(idle);
            char gf[16] = "", us[16] = "", cs[16] = "", ws[16] = "";
            if (L->flops)
                snprintf(gf, sizeof gf, "%9.1f", node_train_flops(L) * (B >> L->halved) / (f + b) / 1e9);
            if (f + b > 0) {
                snprintf(us, sizeof us, "%7.0f%%", 100 * um);
                snprintf(cs, sizeof cs, "%8.3f", cm * 1e3);
                snprintf(ws, sizeof ws, "%8.3f", wm * 1e3);
            }
            printf("  %-10s %-8s %10.3f %10.3f %9s %8s %8s %8s\n", L->name, L->def->name, f * 1e3, b * 1e3,
                   gf, us, ws, cs);
            sum += f + b;
            cpu_sum += cm;
            wait_sum += wm;
        }
        const char *names[4] = {"mining", "allreduce", "optimizer", "other"};
        for (int j = 0; j < 4; j++) {
            double v = median(all + (size_t)(4 * nl + j) * steps, steps);
            printf("  %-19s %10.3f\n", names[j], v * 1e3);
            sum += v;
        }
        double tm = median(tot, steps);
        printf("  %-19s %10.3f ms (sum of medians %.3f), %.0f img/s per rank, %.1f GFLOP/s\n", "step",
               tm * 1e3, sum * 1e3, B / tm, fl * B / tm / 1e9);
        printf("  %-19s %10.3f ms (sum of the layers' medians: all threads' CPU time working)\n",
               "layers cpu", cpu_sum * 1e3);
        printf("  %-19s %10.3f ms (sum of the layers' medians: all threads' wall time waiting)\n",
               "layers wait", wait_sum * 1e3);
        if (T > 1) {
            printf("  %-19s %10.0f per step (handed to the pool's workers)\n", "parallel runs", runs);
            printf("  %-19s %10.1f per step (runs that found the workers asleep)\n", "worker wake-ups",
                   wakes);
        }
    }
    free(prof);
    free(all);
    free(tot);
}

int main(int argc, char **argv) {
    blas_select_core(argv); /* as siamese.c does */
    dist_init(&argc, &argv);
    const char *cfg_path = "configs/fmnist-triplet.ini", *gate = NULL;
    const char *sets[MAX_SETS];
    int nsets = 0;
    long nb = 4, warmup = 5, windows = 0, steps = 20, prof_steps = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!v)
            bad = 1;
        else if (!strcmp(a, "--config"))
            cfg_path = v;
        else if (!strcmp(a, "--set") && nsets < MAX_SETS)
            sets[nsets++] = v;
        else if (!strcmp(a, "--gate"))
            gate = v;
        else if (!strcmp(a, "--batches"))
            bad = parse_long(v, 1, 1000, &nb);
        else if (!strcmp(a, "--warmup"))
            bad = parse_long(v, 0, 100000, &warmup);
        else if (!strcmp(a, "--windows"))
            bad = parse_long(v, 1, 100000, &windows);
        else if (!strcmp(a, "--steps"))
            bad = parse_long(v, 1, 100000, &steps);
        else if (!strcmp(a, "--profile"))
            bad = parse_long(v, 1, 100000, &prof_steps);
        else
            bad = 1;
        if (bad)
            FATAL("bench_train: bad argument '%s' (see the comment at the top of bench/bench_train.c)", a);
        i++;
    }
    Err e;
    Config c;
    if (config_parse_file(&c, cfg_path, &e)) FATAL("%s", e.msg);
    for (int i = 0; i < nsets; i++)
        if (config_set(&c, sets[i], &e)) FATAL("%s", e.msg);
    /* no test or validation set, no pretrained start: nothing but the step is
     * timed (Koch's config names an Omniglot validation set a benchmark
     * machine need not have; the co-segmentation recipe a pretraining run's
     * model) */
    if (config_set(&c, "data.test=", &e) || config_set(&c, "eval.data=", &e) ||
        config_set(&c, "init.from=", &e) || config_validate(&c, &e))
        FATAL("%s", e.msg);
    char *text = config_to_text(&c);
    Bench s;
    memset(&s, 0, sizeof s);
    if (trainer_setup(&s.t, text, 0, &e)) FATAL("%s", e.msg);
    free(text);
    s.nb = (int)nb;
    s.b = xcalloc((size_t)nb, sizeof *s.b);
    DsReader *r;
    if (ds_reader_open(s.t.ds, &r, &e)) FATAL("%s", e.msg);
    for (int i = 0; i < s.nb; i++) {
        batch_init(&s.b[i], &s.t.sampler, s.t.ds, s.t.world);
        BatchDecode dec = trainer_decode(&s.t);
        if (batch_load(&s.b[i], &s.t.sampler, r, s.t.rank, s.t.world, &dec, (uint64_t)i, &e))
            FATAL("%s", e.msg);
    }
    ds_reader_close(r);
    int images = s.b[0].lb.n_images * s.t.world; /* global images per step */
    if (s.t.rank == 0) {
        printf("flops_per_image %.0f\n", train_flops_per_image(&s.t.model));
        printf("images_per_step %d\n", images);
        fflush(stdout);
    }
    run_steps(&s, (int)warmup, NULL);
    if (s.t.rank == 0) printf("ready\n");
    fflush(stdout);
    if (prof_steps) profile(&s, (int)prof_steps);
    for (long w = 0; w < windows; w++) {
        double cpu, sec = run_steps(&s, (int)steps, &cpu);
        if (s.t.rank == 0) printf("window %ld %.6f %ld %.6f\n", steps, sec, steps * images, cpu);
        fflush(stdout);
    }
    if (gate) {
        char path[512], line[64];
        snprintf(path, sizeof path, "%s/go.%d", gate, s.t.rank);
        FILE *f = fopen(path, "r");
        if (!f) FATAL("bench_train: cannot open the gate FIFO %s", path);
        while (fgets(line, sizeof line, f) && line[0] != 'q') {
            long n;
            line[strcspn(line, "\n")] = 0;
            if (parse_long(line, 1, 100000, &n)) FATAL("bench_train: bad gate line '%s'", line);
            double cpu, sec = run_steps(&s, (int)n, &cpu);
            if (s.t.rank == 0) printf("window %ld %.6f %ld %.6f\n", n, sec, n * images, cpu);
            fflush(stdout);
        }
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int world = s.t.world;
    double *rss = xcalloc((size_t)world, sizeof *rss);
    rss[s.t.rank] = (double)ru.ru_maxrss;
    dist_allreduce_sum_doubles(rss, world);
    if (s.t.rank == 0)
        for (int i = 0; i < world; i++) printf("rss %d %.0f\n", i, rss[i]);
    fflush(stdout);
    free(rss);
    for (int i = 0; i < s.nb; i++) batch_free(&s.b[i]);
    free(s.b);
    trainer_free(&s.t);
    dist_finalize();
    return 0;
}
