/* cmd_data: the dataset subcommands `siamese import`, `siamese pairs` and
 * `siamese inspect` (argv[0] is the subcommand name). Argument parsing and
 * printing only; the work is in import.c, pairgen.c and dataset.c. Errors are
 * one line on stderr, "siamese CMD: ...", exit 1 (2 for bad usage). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "image.h"
#include "import.h"
#include "pairgen.h"

int inspect_checkpoint(int argc, char **argv); /* dist/: verify and describe a checkpoint */

static const char import_usage[] =
    "usage: siamese import --format idx|folder|omniglot --out DB\n"
    "       (siamese import --format mot --help: crops of MOTChallenge ground truth)\n"
    "                      [--images F --labels F | --root DIR [--root DIR...]]\n"
    "                      [--exclude-groups LIST|koch] [--rotations 2|4] [--mirror]\n"
    "                      [--resize HxW] [--compress] [--invert] [--color] [--masks DIR]\n"
    "                      [--split-by class|group|sample --test-fraction F --test-out DB] [--seed N]\n"
    "\n"
    "Builds an LMDB dataset (a directory) from images, grey or colour. The output must not\n"
    "exist; it is written under DB.tmp-PID and renamed only when complete. Every\n"
    "sample keeps its source name: its path under --root, or FILE#INDEX for idx\n"
    "(INDEX from 0): see siamese inspect --names.\n"
    "\n"
    "  --format idx        MNIST idx files (plain or .gz): --images F --labels F;\n"
    "                      classes = max label + 1, class names \"0\", \"1\", ...\n"
    "  --format folder     --root DIR with one sub-folder per class (labels in sorted\n"
    "                      name order, class name = folder name) of PGM/PPM, PNG or\n"
    "                      JPEG images; every other entry is an error (dotfiles skipped)\n"
    "  --format omniglot   --root DIR laid out alphabet/character/*.png; one class per\n"
    "                      character, named \"Alphabet/characterNN\"\n"
    "  --out DB            dataset to create\n"
    "  --images F          idx images file (magic 0x00000803)\n"
    "  --labels F          idx labels file (magic 0x00000801, or 0x00000c01: int32 labels)\n"
    "  --root DIR          folder or omniglot root; repeat it to import several roots\n"
    "                      into one dataset (classes in root order, each root's sorted\n"
    "                      by name; a class under two roots is an error; a sample's\n"
    "                      name is its path under its own root)\n"
    "  --exclude-groups L  leave out these groups (comma-separated: Omniglot alphabets,\n"
    "                      or class folders); koch = the ten evaluation alphabets of\n"
    "                      Koch's protocol, so that --root images_background --root\n"
    "                      images_evaluation --exclude-groups koch is Koch et al.'s\n"
    "                      40-alphabet background set; a name found nowhere is an error\n"
    "  --rotations 2|4     also store every class turned by 180 (2) or by 90, 180 and\n"
    "                      270 degrees (4), as new classes \"NAME@rot90\", ... (samples\n"
    "                      \"NAME@rot90\" too, each after its source); needs square\n"
    "                      images; with --split-by, only --out is rotated: the split\n"
    "                      is made first and the held-out part stays as it is\n"
    "  --mirror            also store every class (and its turned copies) mirrored left\n"
    "                      to right, as new classes \"NAME@mirror\", \"NAME@rot90@mirror\",\n"
    "                      ... (samples likewise, after the turns); with --split-by,\n"
    "                      only --out\n"
    "  --resize HxW        resample every image to H x W by exact area averaging (box\n"
    "                      filter); without it all images must have the same size\n"
    "  --compress          zlib-compress each record (raw deflate + CRC-32)\n"
    "  --invert            store 255 - pixel (pixels are stored as decoded otherwise:\n"
    "                      Omniglot keeps white background 255, ink 0)\n"
    "  --color             3 channels (R, G, B as decoded; grey images replicated);\n"
    "                      without it colour becomes grey by BT.601 luma\n"
    "  --masks DIR         folder: a mask per image from the tree DIR that mirrors\n"
    "                      --root (ROOT/C/N.jpg -> DIR/C/N.png, or DIR/C/N.jpg); PNG\n"
    "                      (palette index) or PGM/PPM, 0 background, non-zero object,\n"
    "                      the image's size; stored 0/1 with each sample\n"
    "  --split-by class    whole classes go to --test-out (round(F x classes)); each\n"
    "                      dataset renumbers its classes 0..n-1, keeping the names\n"
    "  --split-by group    the same with whole groups: a class's group is its name\n"
    "                      before the first '/' (the Omniglot alphabet)\n"
    "  --split-by sample   round(F x n) samples of each class go to --test-out (each\n"
    "                      class keeps at least one training sample); labels kept\n"
    "  --test-fraction F   fraction in (0, 1) for --split-by\n"
    "  --test-out DB       the test dataset for --split-by\n"
    "  --seed N            split seed (default 1)\n"
    "  --help              this text\n";

static const char pairs_usage[] =
    "usage: siamese pairs DB (--pairs N | --triplets N) [--seed N]\n"
    "\n"
    "Draws N seeded records from the labels of DB and stores them in its `pairs` or\n"
    "`triplets` sub-database in one transaction, replacing any earlier ones.\n"
    "Do not run it while a training job reads DB.\n"
    "\n"
    "  --pairs N      N pairs (a, b, same): even records same-class, odd records\n"
    "                 different-class (ceil(N/2) same, floor(N/2) different)\n"
    "  --triplets N   N triplets (anchor, positive, negative)\n"
    "  --seed N       seed (default 1)\n"
    "  --help         this text\n"
    "\n"
    "Classes with fewer than 2 samples never give a same pair or an anchor (no\n"
    "positive exists); they still serve as negatives. It is an error when no class\n"
    "has 2 samples or only one class has samples.\n";

static const char inspect_usage[] =
    "usage: siamese inspect DB [--dump ID (--pgm | --ppm | --png) FILE] [--names] [--verify]\n"
    "       siamese inspect CHECKPOINT [--compare OTHER [--tol T]]\n"
    "\n"
    "For a dataset (a directory): prints its meta and the sample count of every class\n"
    "with its name. For a checkpoint (a regular file): verifies every CRC and prints its\n"
    "sections, config, topology and training state.\n"
    "\n"
    "  --dump ID     read sample ID (validated) ...\n"
    "  --ppm FILE    ... and write it as a binary PPM (colour; grey replicated)\n"
    "  --png FILE    ... or a PNG (colour or grey), with the mask (if any) below\n"
    "  --pgm FILE    ... or an 8-bit PGM (channels stacked vertically, then the mask if\n"
    "                any; masks are drawn 0 / 255)\n"
    "  --names       list every sample: id, label, name (tab-separated)\n"
    "  --verify      read and validate every sample, name, pair and triplet record\n"
    "  --compare OTHER  (checkpoints) print how far the parameters and optimizer\n"
    "                state of OTHER differ; exit 1 if more than --tol (default 0:\n"
    "                bit-equal), relative to max(1, |value|)\n"
    "  --help        this text\n";

/* Matches --name VALUE or --name=VALUE at argv[*i]; 1 if matched (value set,
 * *i advanced), 0 if not this option, -1 if the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n)) return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n]) return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

#define USAGE_FAIL(cmd, ...)                                                                                 \
    do {                                                                                                     \
        fprintf(stderr, "siamese " cmd ": " __VA_ARGS__);                                                    \
        fprintf(stderr, " (siamese " cmd " --help)\n");                                                      \
        return 2;                                                                                            \
    } while (0)

static int parse_hw(const char *s, uint32_t *h, uint32_t *w) {
    const char *x = strchr(s, 'x');
    if (!x) return -1;
    char hb[32];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof hb) return -1;
    memcpy(hb, s, n);
    hb[n] = 0;
    long a, b;
    if (parse_long(hb, 1, IMAGE_MAX_SIDE, &a) || parse_long(x + 1, 1, IMAGE_MAX_SIDE, &b)) return -1;
    *h = (uint32_t)a;
    *w = (uint32_t)b;
    return 0;
}

int cmd_import_mot(int argc, char **argv); /* import_mot.c: --format mot has its own options */

int cmd_import(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--format") && !strcmp(argv[i + 1], "mot")) return cmd_import_mot(argc, argv);
    ImportOptions o = {.seed = 1};
    const char *format = NULL, *v;
    int nroots = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if (is_help(argv[i])) {
            fputs(import_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--compress")) {
            o.compress = 1;
        } else if (!strcmp(argv[i], "--invert")) {
            o.invert = 1;
        } else if (!strcmp(argv[i], "--mirror")) {
            o.mirror = 1;
        } else if (!strcmp(argv[i], "--color")) {
            o.color = 1;
        } else if ((m = opt_value(argc, argv, &i, "--format", &format))) {
            if (m < 0) USAGE_FAIL("import", "--format needs a value");
        } else if ((m = opt_value(argc, argv, &i, "--out", &o.out)) ||
                   (m = opt_value(argc, argv, &i, "--images", &o.images)) ||
                   (m = opt_value(argc, argv, &i, "--labels", &o.labels)) ||
                   (m = opt_value(argc, argv, &i, "--masks", &o.masks)) ||
                   (m = opt_value(argc, argv, &i, "--test-out", &o.test_out))) {
            if (m < 0) USAGE_FAIL("import", "%s needs a value", argv[i]);
        } else if ((m = opt_value(argc, argv, &i, "--root", &v))) {
            if (m < 0) USAGE_FAIL("import", "--root needs a directory");
            if (nroots == IMPORT_MAX_ROOTS)
                USAGE_FAIL("import", "more than %d --root folders", IMPORT_MAX_ROOTS);
            o.roots[nroots++] = v;
        } else if ((m = opt_value(argc, argv, &i, "--exclude-groups", &o.exclude_groups))) {
            if (m < 0 || !*o.exclude_groups)
                USAGE_FAIL("import", "--exclude-groups needs a comma-separated list of groups, or koch");
        } else if ((m = opt_value(argc, argv, &i, "--rotations", &v))) {
            if (m < 0 || (strcmp(v, "1") && strcmp(v, "2") && strcmp(v, "4")))
                USAGE_FAIL("import", "--rotations needs 1, 2 or 4");
            o.rotations = (uint32_t)atoi(v);
        } else if ((m = opt_value(argc, argv, &i, "--resize", &v))) {
            if (m < 0 || parse_hw(v, &o.resize_h, &o.resize_w))
                USAGE_FAIL("import", "--resize needs HxW, e.g. 28x28 (each 1..%d)", IMAGE_MAX_SIDE);
        } else if ((m = opt_value(argc, argv, &i, "--split-by", &v))) {
            if (m > 0 && !strcmp(v, "class"))
                o.split = IMPORT_SPLIT_CLASS;
            else if (m > 0 && !strcmp(v, "sample"))
                o.split = IMPORT_SPLIT_SAMPLE;
            else if (m > 0 && !strcmp(v, "group"))
                o.split = IMPORT_SPLIT_GROUP;
            else
                USAGE_FAIL("import", "--split-by needs class, group or sample");
        } else if ((m = opt_value(argc, argv, &i, "--test-fraction", &v))) {
            if (m < 0 || parse_double(v, 0.0, 1.0, &o.test_fraction) || o.test_fraction <= 0 ||
                o.test_fraction >= 1)
                USAGE_FAIL("import", "--test-fraction needs a number strictly between 0 and 1");
        } else if ((m = opt_value(argc, argv, &i, "--seed", &v))) {
            if (m < 0 || parse_u64(v, &o.seed)) USAGE_FAIL("import", "--seed needs a non-negative integer");
        } else {
            USAGE_FAIL("import", "unknown argument '%s'", argv[i]);
        }
    }
    if (!format) USAGE_FAIL("import", "missing --format idx|folder|omniglot");
    if (!strcmp(format, "idx"))
        o.format = IMPORT_IDX;
    else if (!strcmp(format, "folder"))
        o.format = IMPORT_FOLDER;
    else if (!strcmp(format, "omniglot"))
        o.format = IMPORT_OMNIGLOT;
    else
        USAGE_FAIL("import", "unknown --format '%s' (idx, folder or omniglot)", format);
    if (!o.out) USAGE_FAIL("import", "missing --out DB");
    if (o.split != IMPORT_SPLIT_NONE && (!o.test_out || o.test_fraction == 0))
        USAGE_FAIL("import", "--split-by needs --test-fraction F and --test-out DB");
    if (o.split == IMPORT_SPLIT_NONE && (o.test_out || o.test_fraction != 0))
        USAGE_FAIL("import", "--test-fraction and --test-out need --split-by class|group|sample");
    Err e;
    ImportResult r;
    double t0 = now_seconds();
    if (import_run(&o, &r, &e)) {
        fprintf(stderr, "siamese import: %s\n", e.msg);
        return 1;
    }
    printf("siamese import: wrote %s: %" PRIu64 " samples, %u classes, %ux%ux%u%s%s (%.1f s)\n", o.out,
           r.count[0], r.classes[0], r.channels, r.height, r.width, o.masks ? ", masks" : "",
           o.compress ? ", compressed" : "", now_seconds() - t0);
    if (o.split != IMPORT_SPLIT_NONE)
        printf("siamese import: wrote %s: %" PRIu64 " samples, %u classes (test split by %s)\n", o.test_out,
               r.count[1], r.classes[1], import_split_name(o.split));
    return 0;
}

int cmd_pairs(int argc, char **argv) {
    const char *db = NULL, *v;
    uint64_t n = 0, seed = 1;
    int triplets = -1;
    for (int i = 1; i < argc; i++) {
        int m, t = 0;
        if (is_help(argv[i])) {
            fputs(pairs_usage, stdout);
            return 0;
        } else if ((m = opt_value(argc, argv, &i, "--pairs", &v)) ||
                   (t = 1, m = opt_value(argc, argv, &i, "--triplets", &v))) {
            if (triplets >= 0) USAGE_FAIL("pairs", "give one of --pairs N or --triplets N");
            if (m < 0 || parse_u64(v, &n) || n == 0 || n > 1000000000ull)
                USAGE_FAIL("pairs", "--%s needs a count in 1..1000000000", t ? "triplets" : "pairs");
            triplets = t;
        } else if ((m = opt_value(argc, argv, &i, "--seed", &v))) {
            if (m < 0 || parse_u64(v, &seed)) USAGE_FAIL("pairs", "--seed needs a non-negative integer");
        } else if (argv[i][0] == '-' || db) {
            USAGE_FAIL("pairs", "unknown argument '%s'", argv[i]);
        } else {
            db = argv[i];
        }
    }
    if (!db) USAGE_FAIL("pairs", "missing the dataset DB");
    if (triplets < 0) USAGE_FAIL("pairs", "give --pairs N or --triplets N");
    Err e;
    Dataset *ds;
    if (ds_open(&ds, db, &e)) {
        fprintf(stderr, "siamese pairs: %s\n", e.msg);
        return 1;
    }
    const DsMeta *m = ds_meta(ds);
    uint32_t *t = xmalloc(sizeof(uint32_t) * 3 * n), *b = NULL;
    uint8_t *same = NULL;
    int rc;
    if (triplets) {
        rc = pairgen_triplets(t, n, ds_labels(ds), m->count, m->classes, seed, &e);
    } else {
        b = xmalloc(sizeof(uint32_t) * n);
        same = xmalloc(n);
        rc = pairgen_pairs(t, b, same, n, ds_labels(ds), m->count, m->classes, seed, &e);
    }
    ds_close(ds); /* the writers open the environment themselves */
    if (rc) {
        fprintf(stderr, "siamese pairs: %s: %s\n", db, e.msg);
    } else {
        rc = triplets ? ds_write_triplets(db, t, n, &e) : ds_write_pairs(db, t, b, same, n, &e);
        if (rc)
            fprintf(stderr, "siamese pairs: %s\n", e.msg);
        else if (triplets)
            printf("siamese pairs: wrote %" PRIu64 " triplets into %s (seed %" PRIu64 ")\n", n, db, seed);
        else
            printf("siamese pairs: wrote %" PRIu64 " pairs into %s: %" PRIu64 " same-class, %" PRIu64
                   " different (seed %" PRIu64 ")\n",
                   n, db, (n + 1) / 2, n / 2, seed);
    }
    free(t);
    free(b);
    free(same);
    return rc ? 1 : 0;
}

/* Reads every record; prints the first fault. */
static int verify_all(Dataset *ds, Err *e) {
    const DsMeta *m = ds_meta(ds);
    DsReader *r;
    if (ds_verify_names(ds, e) || ds_reader_open(ds, &r, e)) return -1;
    size_t hw = (size_t)m->height * m->width;
    uint8_t *px = xmalloc(hw * m->channels), *mask = xmalloc(hw);
    int rc = 0;
    for (uint64_t i = 0; i < m->count && !rc; i++) {
        int32_t label;
        rc = ds_read(r, i, px, &label, mask, e);
    }
    for (uint64_t i = 0; i < m->npairs && !rc; i++) {
        uint32_t a, b;
        int same;
        rc = ds_read_pair(r, i, &a, &b, &same, e);
    }
    for (uint64_t i = 0; i < m->ntriplets && !rc; i++) {
        uint32_t t[3];
        rc = ds_read_triplet(r, i, t, e);
    }
    free(px);
    free(mask);
    ds_reader_close(r);
    return rc;
}

/* Writes sample id as `kind` ("pgm": the channels stacked vertically;
 * "ppm" / "png": a colour or grey picture), its mask (if any) below it as
 * 0 / 255 grey (class masks: (class + 1) x 255 / classes). */
static int dump_one(Dataset *ds, uint64_t id, const char *kind, const char *path, Err *e) {
    const DsMeta *m = ds_meta(ds);
    uint32_t C = m->channels, H = m->height, W = m->width, mh = m->has_masks ? H : 0;
    int pgm = !strcmp(kind, "pgm");
    if (!pgm && C != 1 && C != 3)
        return err_set(e, "%s has %u channels: --%s writes 1 or 3; use --pgm (channels stacked)", ds_path(ds),
                       C, kind);
    DsReader *r;
    if (ds_reader_open(ds, &r, e)) return -1;
    size_t hw = (size_t)H * W;
    uint8_t *px = xmalloc(hw * (C + 1));
    int32_t label;
    int rc = ds_read(r, id, px, &label, px + hw * C, e);
    ds_reader_close(r);
    for (size_t i = 0; mh && i < hw; i++) /* class masks: class + 1 in grey steps of 255 / classes */
        px[hw * C + i] = m->has_masks == DS_MASKS_CLASS ? (uint8_t)(px[hw * C + i] * 255u / m->classes)
                         : px[hw * C + i]               ? 255
                                                        : 0;
    uint32_t oc = pgm ? 1 : !strcmp(kind, "ppm") ? 3 : C, rows = pgm ? H * C + mh : H + mh;
    uint8_t *img = px;
    if (!pgm) { /* interleave: picture rows, then the mask rows */
        img = xmalloc((size_t)rows * W * oc);
        for (size_t i = 0; i < hw; i++)
            for (uint32_t c = 0; c < oc; c++) img[i * oc + c] = px[(C == 1 ? 0 : c) * hw + i];
        for (size_t i = 0; i < (size_t)mh * W; i++)
            for (uint32_t c = 0; c < oc; c++) img[(hw + i) * oc + c] = px[hw * C + i];
    }
    if (!rc)
        rc = pgm                               ? image_write_pgm(path, img, rows, W, e)
             : oc == 3 && !strcmp(kind, "ppm") ? image_write_ppm(path, img, rows, W, e)
                                               : image_write_png(path, img, rows, W, oc, e);
    const char *name = NULL;
    if (!rc && !(rc = ds_load_names(ds, e))) name = ds_sample_name(ds, id);
    if (!rc)
        printf("wrote %s: sample %" PRIu64 "%s%s, label %d (%s), %ux%u %s%s\n", path, id, name ? " " : "",
               name ? name : "", label, ds_class_name(ds, (uint32_t)label), rows, W, pgm ? "PGM" : kind,
               m->has_masks == DS_MASKS_CLASS ? " (class mask below, grey (class + 1) x 255 / classes)"
               : mh                           ? " (mask below, 255 = object)"
                                              : "");
    if (img != px) free(img);
    free(px);
    return rc;
}

/* " (per channel a, b, c)" for colour, then the newline. */
static void print_channels(const float *v, uint32_t n) {
    if (n > 1) {
        printf(" (per channel");
        for (uint32_t c = 0; c < n; c++) printf("%s %.6f", c ? "," : "", v[c]);
        printf(")");
    }
    printf("\n");
}

static int print_names(Dataset *ds, Err *e) {
    const DsMeta *m = ds_meta(ds);
    if (ds_load_names(ds, e)) return -1;
    if (!m->has_names) {
        printf("sample names: none (a version 1 dataset, or written without names)\n");
        return 0;
    }
    const int32_t *labels = ds_labels(ds);
    printf("sample names (id label name):\n");
    for (uint64_t i = 0; i < m->count; i++)
        printf("%" PRIu64 "\t%d\t%s\n", i, labels[i], ds_sample_name(ds, i));
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *db = NULL, *out = NULL, *kind = NULL, *v;
    uint64_t dump = 0;
    int have_dump = 0, verify = 0, list_names = 0;
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            fputs(inspect_usage, stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-') {
            struct stat st;
            if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) return inspect_checkpoint(argc, argv);
            break;
        }
    for (int i = 1; i < argc; i++) {
        int m;
        if (!strcmp(argv[i], "--verify")) {
            verify = 1;
        } else if (!strcmp(argv[i], "--names")) {
            list_names = 1;
        } else if ((m = opt_value(argc, argv, &i, "--dump", &v))) {
            if (m < 0 || parse_u64(v, &dump)) USAGE_FAIL("inspect", "--dump needs a sample id");
            have_dump = 1;
        } else if ((m = opt_value(argc, argv, &i, "--pgm", &v)) ||
                   (m = opt_value(argc, argv, &i, "--ppm", &v)) ||
                   (m = opt_value(argc, argv, &i, "--png", &v))) {
            if (m < 0 || out) USAGE_FAIL("inspect", "give one of --pgm, --ppm or --png with a file name");
            kind = v == argv[i] ? argv[i - 1] + 2 : argv[i] + 2; /* "--png FILE" or "--png=FILE" */
            kind = !strncmp(kind, "pgm", 3) ? "pgm" : !strncmp(kind, "ppm", 3) ? "ppm" : "png";
            out = v;
        } else if (argv[i][0] == '-' || db) {
            USAGE_FAIL("inspect", "unknown argument '%s'", argv[i]);
        } else {
            db = argv[i];
        }
    }
    if (!db) USAGE_FAIL("inspect", "missing the dataset DB or a CHECKPOINT file");
    if (have_dump != (out != NULL)) USAGE_FAIL("inspect", "--dump ID and --pgm/--ppm/--png FILE go together");
    Err e;
    Dataset *ds;
    if (ds_open(&ds, db, &e)) {
        fprintf(stderr, "siamese inspect: %s\n", e.msg);
        return 1;
    }
    const DsMeta *m = ds_meta(ds);
    printf("dataset     %s\n", db);
    printf("format      %s version %u\n", DS_FORMAT_NAME, m->version);
    printf("source      %s\n", m->source);
    printf("count       %" PRIu64 "\n", m->count);
    printf("shape       %ux%ux%u (channels x height x width)\n", m->channels, m->height, m->width);
    printf("classes     %u\n", m->classes);
    printf("mean        %.6f", m->mean);
    print_channels(m->channel_mean, m->channels);
    printf("std         %.6f", m->std);
    print_channels(m->channel_std, m->channels);
    printf("compressed  %s\n", m->compressed ? "yes" : "no");
    printf("masks       %s\n", m->has_masks == DS_MASKS_CLASS ? "class masks (0 background, class + 1 per object pixel)"
                                : m->has_masks                   ? "yes (0 background, non-zero object)"
                                                                 : "no");
    printf("names       %s\n", m->has_names ? "yes" : "no");
    printf("pairs       %" PRIu64 "\n", m->npairs);
    printf("triplets    %" PRIu64 "\n", m->ntriplets);
    printf("class histogram (label count name):\n");
    for (uint32_t c = 0; c < m->classes; c++) {
        uint32_t n;
        ds_class_ids(ds, c, &n);
        printf("  %6u %8u  %s\n", c, n, ds_class_name(ds, c));
    }
    int rc = 0;
    if (list_names) rc = print_names(ds, &e);
    if (!rc && verify) {
        rc = verify_all(ds, &e);
        if (!rc)
            printf("verified    %" PRIu64 " samples, %" PRIu64 " pairs, %" PRIu64 " triplets: all valid\n",
                   m->count, m->npairs, m->ntriplets);
    }
    if (!rc && have_dump) rc = dump_one(ds, dump, kind, out, &e);
    if (rc) fprintf(stderr, "siamese inspect: %s\n", e.msg);
    ds_close(ds);
    return rc ? 1 : 0;
}
