/* test_ckpt_bounds: training checkpoints whose CRCs are all valid but whose
 * content is hostile (issue 15), built from the legacy fixture
 * tests/fixtures/legacy/a-step10.smpi by rewriting sections: a config,
 * topology, state or metrics section that is a valid deflate stream of 3 GiB
 * of zeros (ratio ~1000, within the container's deflate limit), params and
 * optim larger than the topology says, a config claiming a huge layer next
 * to a small topology, all-NaN parameters, absurd state values. Each must
 * be refused with one line naming the file and section or key, before
 * anything of the claimed size is allocated (the eval loader runs under a
 * 4 GiB address-space limit). Also the tool tests/e2e_hostile.sh uses:
 *   test_ckpt_bounds --nan SRC DST             params all NaN
 *   test_ckpt_bounds --config SRC DST K=V ...  config section with overrides
 *   test_ckpt_bounds --state SRC DST K=V       one state line replaced
 *   test_ckpt_bounds --zeros SRC DST NAME N    section NAME = N zero bytes */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../dist/evaluate.h"
#include "../dist/train.h"
#include "fixture_files.h"
#include "test.h"

#define LEGACY "tests/fixtures/legacy/a-step10.smpi"
#define MIB ((uint64_t)1 << 20)

/* ---- writing a checkpoint by hand (the layout of io/checkpoint.h) -------- */

typedef struct Section {
    const char *name;
    const uint8_t *data; /* raw bytes, or NULL: `zeros` zero bytes */
    uint64_t n, zeros;
} Section;

static void le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A zlib stream of `zeros` zero bytes (a multiple of 1 MiB) without
 * deflating them all: a block coding 1 MiB of zeros after zeros is valid
 * wherever the window holds zeros, so it is repeated; the adler32 of n zeros
 * is (n mod 65521) << 16 | 1. *crc gets the CRC-32 of the raw bytes. */
static uint8_t *zero_stream(uint64_t zeros, size_t *len, uint32_t *crc) {
    ASSERT(zeros % MIB == 0 && zeros >= 2 * MIB);
    uint8_t *in = xcalloc(MIB, 1), *a = xmalloc(MIB), *b = xmalloc(MIB), *c = xmalloc(256);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ASSERT(deflateInit(&zs, 9) == Z_OK);
    size_t out[3];
    uint8_t *bufs[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        zs.next_in = in;
        zs.avail_in = k < 2 ? (uInt)MIB : 0;
        zs.next_out = bufs[k];
        zs.avail_out = k < 2 ? (uInt)MIB : 256;
        ASSERT(deflate(&zs, k < 2 ? Z_SYNC_FLUSH : Z_FINISH) == (k < 2 ? Z_OK : Z_STREAM_END));
        out[k] = (size_t)(zs.next_out - bufs[k]);
    }
    deflateEnd(&zs);
    uint64_t blocks = zeros / MIB;
    *len = out[0] + (size_t)(blocks - 1) * out[1] + out[2];
    uint8_t *s = xmalloc(*len), *p = s;
    memcpy(p, a, out[0]), p += out[0];
    for (uint64_t i = 1; i < blocks; i++) memcpy(p, b, out[1]), p += out[1];
    memcpy(p, c, out[2]);
    uint32_t adler = (uint32_t)(zeros % 65521) << 16 | 1;
    for (int i = 0; i < 4; i++) s[*len - 4 + (size_t)i] = (uint8_t)(adler >> (24 - 8 * i));
    uint32_t one = (uint32_t)crc32(0, in, (uInt)MIB);
    *crc = one;
    for (uint64_t i = 1; i < blocks; i++) *crc = (uint32_t)crc32_combine(*crc, one, (z_off_t)MIB);
    free(in), free(a), free(b), free(c);
    return s;
}

static void craft(const char *path, const Section *sec, int n) {
    uint8_t **pay = xcalloc((size_t)n, sizeof *pay);
    size_t *plen = xcalloc((size_t)n, sizeof *plen);
    uint32_t *rawcrc = xcalloc((size_t)n, sizeof *rawcrc);
    size_t total = 32 + 72 * (size_t)n + 12;
    for (int i = 0; i < n; i++) {
        if (sec[i].data) {
            uLongf cap = compressBound((uLong)sec[i].n);
            pay[i] = xmalloc(cap);
            ASSERT(compress2(pay[i], &cap, sec[i].data, (uLong)sec[i].n, 6) == Z_OK);
            plen[i] = cap;
            rawcrc[i] = (uint32_t)crc32(0, sec[i].data, (uInt)sec[i].n);
        } else {
            pay[i] = zero_stream(sec[i].zeros, &plen[i], &rawcrc[i]);
        }
        total += plen[i];
    }
    uint8_t *f = xcalloc(total, 1), *t = f + 32;
    memcpy(f, "SMPICKPT", 8);
    le32(f + 8, 1);
    le32(f + 12, (uint32_t)n);
    le64(f + 16, total);
    size_t off = 32 + 72 * (size_t)n;
    for (int i = 0; i < n; i++, t += 72) {
        memcpy(t, sec[i].name, strlen(sec[i].name));
        le64(t + 32, off);
        le64(t + 40, plen[i]);
        le64(t + 48, sec[i].data ? sec[i].n : sec[i].zeros);
        le32(t + 56, rawcrc[i]);
        le32(t + 60, (uint32_t)crc32(0, pay[i], (uInt)plen[i]));
        memcpy(f + off, pay[i], plen[i]);
        off += plen[i];
        free(pay[i]);
    }
    le32(f + 24, (uint32_t)crc32(0, f + 32, (uInt)(72 * n)));
    le32(f + 28, (uint32_t)crc32(0, f, 28));
    memcpy(f + off, "SMPI-END", 8);
    le32(f + off + 8, (uint32_t)crc32(0, f, (uInt)(off + 8)));
    fixture_write_file(path, f, total);
    free(f), free(pay), free(plen), free(rawcrc);
}

/* The sections of src as Section entries (pointing into *c, which the
 * caller frees), for rewriting one of them. */
static int load_sections(const char *src, Ckpt **c, Section *sec) {
    Err e;
    ASSERT(ckpt_read(c, src, NULL, &e) == 0);
    int n = ckpt_count(*c);
    for (int i = 0; i < n; i++) {
        size_t len;
        sec[i].name = ckpt_name(*c, i);
        sec[i].data = ckpt_get(*c, sec[i].name, &len);
        sec[i].n = len;
        sec[i].zeros = 0;
    }
    return n;
}

static Section *find(Section *sec, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(sec[i].name, name)) return &sec[i];
    FATAL("no section %s", name);
}

/* Copies src to dst with section `name` replaced by (data, len), or by
 * `zeros` zero bytes when data is NULL. */
static void rewrite(const char *src, const char *dst, const char *name, const void *data, size_t len,
                    uint64_t zeros) {
    Ckpt *c;
    Section sec[16];
    int n = load_sections(src, &c, sec);
    Section *s = find(sec, n, name);
    s->data = data;
    s->n = len;
    s->zeros = zeros;
    craft(dst, sec, n);
    ckpt_free(c);
}

/* ---- the surgery modes ------------------------------------------------- */

static char *section_text(const char *src, const char *name) {
    Ckpt *c;
    Err e;
    size_t n;
    ASSERT(ckpt_read(&c, src, NULL, &e) == 0);
    const char *t = ckpt_get(c, name, &n);
    ASSERT(t);
    char *s = strndup(t, n);
    ckpt_free(c);
    return s;
}

static void nan_params(const char *src, const char *dst) {
    Ckpt *c;
    Err e;
    size_t n;
    ASSERT(ckpt_read(&c, src, NULL, &e) == 0);
    ckpt_get(c, "params", &n);
    ckpt_free(c);
    float *p = xmalloc(n);
    for (size_t i = 0; i < n / 4; i++) p[i] = NAN;
    rewrite(src, dst, "params", p, n, 0);
    free(p);
}

static void config_overrides(const char *src, const char *dst, char **sets, int nsets) {
    char *text = section_text(src, "config");
    static Config cfg;
    Err e;
    ASSERT(config_parse_text(&cfg, text, src, &e) == 0);
    for (int i = 0; i < nsets; i++)
        if (config_set(&cfg, sets[i], &e)) FATAL("%s", e.msg);
    char *out = config_to_text(&cfg);
    rewrite(src, dst, "config", out, strlen(out), 0);
    free(out);
    free(text);
}

static void state_line(const char *src, const char *dst, const char *kv) {
    char *text = section_text(src, "state"), out[4096] = "";
    size_t kl = strcspn(kv, "=") + 1, len = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        len += (size_t)snprintf(out + len, sizeof out - len, "%s\n", strncmp(l, kv, kl) ? l : kv);
    rewrite(src, dst, "state", out, len, 0);
    free(text);
}

/* ---- the tests --------------------------------------------------------- */

/* ckpt_read with the training bounds fails naming path, the section and
 * `what`; the same file with no bounds (the container alone) reads. */
static void expect_bound(const char *path, const char *section, const char *what, int readable) {
    Ckpt *c;
    Err e = {""};
    char want[64];
    snprintf(want, sizeof want, "section '%s' claims", section);
    int rc = ckpt_read(&c, path, &train_ckpt_bounds, &e);
    CHECK(rc == -1 && strstr(e.msg, path) && strstr(e.msg, want) && strstr(e.msg, what) &&
              !strchr(e.msg, '\n'),
          "%s: want '%s' and '%s', got: %s", section, want, what, rc ? e.msg : "accepted");
    if (rc == 0) ckpt_free(c);
    if (readable) {
        CHECK(ckpt_read(&c, path, NULL, &e) == 0, "%s: the crafted stream itself is valid: %s", section,
              e.msg);
        if (c) ckpt_free(c);
    }
}

static void test_zero_sections(void) {
    const char *p = fixture_path("z.smpi");
    /* The crafted stream is valid: 8 MiB of zeros read back as zeros. */
    rewrite(LEGACY, p, "metrics", NULL, 0, 8 * MIB);
    Ckpt *c;
    Err e;
    size_t n = 0;
    CHECK(ckpt_read(&c, p, NULL, &e) == 0, "8 MiB zero section reads: %s", e.msg);
    const uint8_t *z = c ? ckpt_get(c, "metrics", &n) : NULL;
    int zero = z && n == 8 * MIB;
    for (size_t i = 0; zero && i < n; i++) zero &= z[i] == 0;
    CHECK(zero, "the crafted section inflates to 8 MiB of zeros (%zu bytes)", n);
    if (c) ckpt_free(c);
    expect_bound(p, "metrics", "the metrics of 10 steps take at most", 0);
    /* 3 GiB of zeros in each text section: refused from the table. */
    const char *names[] = {"config", "topology", "state", "metrics"};
    const char *limit[] = {"a config section holds at most 1048576",
                           "a topology section holds at most 1048576", "a state section holds at most 4096",
                           "the metrics of 10 steps take at most 6912"};
    for (int i = 0; i < 4; i++) {
        rewrite(LEGACY, p, names[i], NULL, 0, (uint64_t)3 << 30);
        expect_bound(p, names[i], limit[i], 0);
    }
    /* params and optim: by the topology's 6544 floats. */
    rewrite(LEGACY, p, "params", NULL, 0, (uint64_t)3 << 30);
    expect_bound(p, "params", "the 6544 parameters of the topology section take 26176", 0);
    rewrite(LEGACY, p, "optim", NULL, 0, 64 * MIB);
    expect_bound(p, "optim", "the optimizer state of the 6544 parameters of the topology section take 52352",
                 1);
    /* A params section with no topology before it is refused too. */
    Section sec[16];
    int k = load_sections(LEGACY, &c, sec);
    Section *t = find(sec, k, "topology");
    t->name = "topology-gone";
    craft(p, sec, k);
    ckpt_free(c);
    expect_bound(p, "params", "no valid topology section comes before it", 1);
}

/* eval_model_load(path) in a child limited to 4 GiB of address space:
 * returns its message ("" if it loaded), or "exit N" if it died. */
static void load_limited(const char *path, char *msg, size_t cap) {
    int fd[2];
    ASSERT(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        struct rlimit rl = {(rlim_t)4 << 30, (rlim_t)4 << 30};
        setrlimit(RLIMIT_AS, &rl);
        EvalModel l;
        Err e = {""};
        int rc = eval_model_load(&l, path, 256, &e);
        if (rc == 0) eval_model_free(&l);
        ssize_t w = write(fd[1], e.msg, strlen(e.msg));
        (void)w;
        _exit(0);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], msg, cap - 1);
    msg[got > 0 ? got : 0] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        snprintf(msg, cap, "exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void expect_load(const char *path, const char *what, const char *label) {
    char msg[1100];
    load_limited(path, msg, sizeof msg);
    CHECK(what[0] ? strstr(msg, path) && strstr(msg, what) && !strchr(msg, '\n') : !msg[0],
          "%s: want %s'%s', got '%s'", label, what[0] ? "an error with " : "", what, msg);
}

static void test_eval_load(void) {
    const char *p = fixture_path("e.smpi");
    expect_load(LEGACY, "", "the legacy checkpoint loads");
    char *huge[] = {"fc1.out=16777216", "conv1.filters=65536"};
    config_overrides(LEGACY, p, huge, 2);
    expect_load(p, "builds another model than its topology section describes", "config claims a 73 GB model");
    char *pad[] = {"conv1.filters=65536", "conv1.pad=64"};
    config_overrides(LEGACY, p, pad, 2);
    expect_load(p, "topology section describes", "config claims a padded 65536-filter conv");
    nan_params(LEGACY, p);
    expect_load(p, "6544 parameters are not finite (NaN or inf; the first in conv1.weight)",
                "all-NaN parameters");
    state_line(LEGACY, p, "std=1e11");
    expect_load(p, "state std=1e11 is outside 1e-06..10", "a normalisation std of 1e11");
}

static void test_state(void) {
    static const char good[] = "format=1\nstep=10\nepoch=2\nstep_in_epoch=2\nopt_t=10\nworld=3\nseed=5\n"
                               "mean=0.25\nstd=0.5\ntotal_steps=20\nsteps_per_epoch=4\nrng=anything\n";
    TrainState s;
    Err e;
    CHECK(train_state_parse(good, sizeof good - 1, &s, &e) == 0 && s.step == 10 && s.world == 3 &&
              s.norm.channels == 1 && s.norm.std[0] == 0.5f && s.steps_per_epoch == 4,
          "a good state: %s", e.msg);
    static const struct {
        const char *line, *what;
    } bad[] = {{"world=0", "world=0 is not an integer in 1..1048576"},
               {"world=1048577", "world=1048577"},
               {"steps_per_epoch=0", "steps_per_epoch=0 is not an integer"},
               {"std=1e11", "std=1e11 is outside"},
               {"std=0", "std=0 is outside"},
               {"mean=2", "mean=2 is outside 0..1"},
               {"mean=nan", "mean=nan"},
               {"step=0x10", "step=0x10 is not an integer"},
               {"step=-1", "step=-1"},
               {"step=21", "do not agree"},
               {"opt_t=11", "do not agree"},
               {"epoch=3", "do not agree"},
               {"format=2", "format=2"},
               {"seed=99999999999999999999", "seed="},
               {"total_steps=", "total_steps= is not"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[sizeof good + 64];
        size_t kl = strcspn(bad[i].line, "=") + 1, len = 0;
        char copy[sizeof good];
        memcpy(copy, good, sizeof good);
        for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            len += (size_t)snprintf(text + len, sizeof text - len, "%s\n",
                                    strncmp(l, bad[i].line, kl) ? l : bad[i].line);
        Err be = {""};
        CHECK(train_state_parse(text, len, &s, &be) == -1 && strstr(be.msg, bad[i].what), "state %s: %s",
              bad[i].line, be.msg);
    }
    /* The best validation value: all three lines or none. */
    char with[sizeof good + 96];
    int wl = snprintf(with, sizeof with, "%sbest=0.8125\nbest_step=8\nbest_metric=nway_accuracy\n", good);
    CHECK(train_state_parse(with, (size_t)wl, &s, &e) == 0 && s.has_best && s.best == 0.8125 && s.best_step == 8 &&
              !strcmp(s.best_metric, "nway_accuracy"),
          "best, best_step and best_metric parsed: %s", e.msg);
    CHECK(train_state_parse(good, sizeof good - 1, &s, &e) == 0 && !s.has_best, "no best lines: none");
    wl = snprintf(with, sizeof with, "%sbest=0.8\n", good);
    CHECK(train_state_parse(with, (size_t)wl, &s, &e) == -1 && strstr(e.msg, "only some of best="),
          "best= alone refused: %s", e.msg);
    wl = snprintf(with, sizeof with, "%sbest=0.8\nbest_step=11\nbest_metric=recall_at_1\n", good);
    CHECK(train_state_parse(with, (size_t)wl, &s, &e) == -1 && strstr(e.msg, "do not agree"),
          "a best step after the step refused: %s", e.msg);
    wl = snprintf(with, sizeof with, "%sbest=nan\nbest_step=1\nbest_metric=recall_at_1\n", good);
    CHECK(train_state_parse(with, (size_t)wl, &s, &e) == -1 && strstr(e.msg, "best=nan"), "best=nan refused: %s",
          e.msg);
    static const char missing[] = "format=1\nstep=10\n";
    CHECK(train_state_parse(missing, sizeof missing - 1, &s, &e) == -1 && strstr(e.msg, "no epoch= line"),
          "a missing key: %s", e.msg);
}

static void test_topology(void) {
    ModelTopology t;
    Err e;
    static const char ok[] = "input 1x12x12\nconv1.weight 16x1x3x3\nconv1.bias 16\n";
    CHECK(model_topology_parse(ok, sizeof ok - 1, &t, &e) == 0 && t.floats == 160 && t.tensors == 2 &&
              t.in_h == 12,
          "topology: %s", e.msg);
    const char *bad[] = {"",
                         "inp 1x12x12\n",
                         "input 1x12\n",
                         "input 1x12x12\nw 0x3\n",
                         "input 1x12x12\nw 3x\n",
                         "input 1x12x12\nw 1x2x3x4x5\n",
                         "input 1x12x12\nw 2147483647x2147483647x2147483647\n",
                         "input 1x12x12\nnospace\n",
                         "input 1x12x12\nw -3\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(model_topology_parse(bad[i], strlen(bad[i]), &t, &e) == -1 && strstr(e.msg, "topology"),
              "bad topology %zu refused: %s", i, e.msg);
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "--nan")) return nan_params(argv[2], argv[3]), 0;
    if (argc >= 4 && !strcmp(argv[1], "--config"))
        return config_overrides(argv[2], argv[3], argv + 4, argc - 4), 0;
    if (argc == 5 && !strcmp(argv[1], "--state")) return state_line(argv[2], argv[3], argv[4]), 0;
    if (argc == 6 && !strcmp(argv[1], "--zeros")) {
        uint64_t n;
        ASSERT(parse_u64(argv[5], &n) == 0);
        return rewrite(argv[2], argv[3], argv[4], NULL, 0, n), 0;
    }
    fixture_dir_create("ckpt-bounds");
    test_state();
    test_topology();
    test_zero_sections();
    test_eval_load();
    fixture_rm_tree(fixture_dir());
    return test_finish();
}
