/* cmd_track: `siamese track` (tracker.c over one MOTChallenge sequence,
 * results in the MOTChallenge format) and `siamese mot-draw` (a frame with
 * boxes and ids as PNG, through io/draw.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/draw.h"
#include "../io/image.h"
#include "appearance.h"
#include "fit.h"
#include "tracker.h"

static const char track_usage[] =
    "usage: siamese track CHECKPOINT --seq DIR --out FILE [--mode online|batch] [--combiner FILE]\n"
    "       siamese track --appearance none --seq DIR --out FILE [--mode online|batch]\n"
    "       tuning: [--min-score S] [--gate P] [--max-gap N] [--max-speed V]\n"
    "               [--entry-cost C] [--skip-cost C] [--max-age N] [--min-hits N]\n"
    "               [--birth-score S] [--min-len N] [--gallery N] [--gallery-score best|mean]\n"
    "               [--relink N] [--relink-combiner FILE] [--relink-motion 0|1]\n"
    "               [--merge-gap N] [--merge-gate P] [--uncross N] [--uncross-iou T]\n"
    "               [--uncross-margin M] [--mend N] [--mend-score S] [--behind N]\n"
    "               [--behind-cover F] [--behind-margin M]\n"
    "               [--interpolate N] [--extrapolate N]\n"
    "\n"
    "Links the detections of a MOTChallenge sequence (DIR/det/det.txt) into tracks and\n"
    "writes them to FILE (frame,id,x,y,w,h,score,-1,-1,-1). The link probability is a\n"
    "logistic model of IoU, distance, size change and time gap, and with a CHECKPOINT\n"
    "the network's score for the two detections' crops (--combiner FILE, from siamese\n"
    "track-fit; without it the built-in model, plus the network's score taken as\n"
    "log-odds). Prints the frames per second. docs/tracking.md has the details.\n"
    "\n"
    "  CHECKPOINT         a trained matching network: its score for two detections' crops\n"
    "                     is a link feature (the siamese tracker); A,B,...: an ensemble of\n"
    "                     two-tower networks (minus the root mean of their squared\n"
    "                     embedding distances)\n"
    "  --appearance none  no appearance model: the motion/IoU-only baseline\n"
    "  --seq DIR          the sequence (seqinfo.ini, det/det.txt)\n"
    "  --out FILE         result file to write\n"
    "  --mode M           online: frame by frame, Hungarian matching (default);\n"
    "                     batch: min-cost network flow over the whole sequence\n"
    "  --combiner FILE    link model written by siamese track-fit\n"
    "  --min-score S      ignore detections scoring below S (default 0)\n"
    "  --gate P           least link probability (default 0.1; 0.5 online with a CHECKPOINT)\n"
    "  --max-gap N        batch: link detections up to N frames apart (default 15)\n"
    "  --max-speed V      no link moves more than V box heights per frame (default 0.5)\n"
    "  --entry-cost C     batch: cost of starting a track, and of ending one (default 3;\n"
    "                     5 with a CHECKPOINT)\n"
    "  --skip-cost C      batch: added to a link's cost per frame it skips (default 0.5)\n"
    "  --max-age N        online: frames a track survives without a match (default 10;\n"
    "                     30 with a CHECKPOINT)\n"
    "  --min-hits N       online: matches before a track is reported (default 3)\n"
    "  --birth-score S    online: least score of a detection that starts a track (default 0.6)\n"
    "  --min-len N        drop tracks of fewer than N detections (default 3)\n"
    "  --gallery N        track-level appearance over N detections (default 5): online, a\n"
    "                     track's last N against a detection; batch with --relink, the\n"
    "                     link a -> b by a and N - 1 before it on its track against b and\n"
    "                     N - 1 after it\n"
    "  --gallery-score S  best: a gallery's best pair score (default online); mean: the mean\n"
    "                     of its pairs' (default batch)\n"
    "  --relink N         batch with a CHECKPOINT: solve the flow N more times, each link\n"
    "                     scored by the galleries of the tracks found before (default 0)\n"
    "  --relink-combiner F  batch with --relink: the link model of the relink flows (from\n"
    "                     siamese track-fit --relink-from: fitted on gallery scores; default\n"
    "                     the --combiner)\n"
    "  --relink-motion M  batch, 1: in the relink flows and joins, a link's first box moves\n"
    "                     at its track's velocity over the gap, as online (default 0: not)\n"
    "  --merge-gap N      batch with a CHECKPOINT: after the last flow, join track ends to\n"
    "                     track starts more than --max-gap and at most N frames later,\n"
    "                     scored by their galleries (as --relink) and the relink link model\n"
    "                     (default 0: never)\n"
    "  --merge-gate P     least link probability of such a join (default 0.5)\n"
    "  --uncross N        batch with a CHECKPOINT: after the flows and joins, where two\n"
    "                     tracks' boxes overlap (--uncross-iou) over some frames, compare up\n"
    "                     to N detections of each before those frames with up to N after\n"
    "                     (mean network score): exchange the tracks' ends after them when\n"
    "                     the crossed pairing scores higher (default 0: never)\n"
    "  --uncross-iou T    a crossing: boxes overlapping by IoU above T (default 0.5)\n"
    "  --uncross-margin M exchange only when the crossed pairing's two mean scores sum to\n"
    "                     more than M above the tracked pairing's (default 0)\n"
    "  --mend N           batch with a CHECKPOINT: last, join a track's end to another\n"
    "                     track's start 1 to N frames later by appearance alone (the mean\n"
    "                     score of up to --gallery detections of each), when that score\n"
    "                     is at least --mend-score and beats every other end or start\n"
    "                     either could join (default 0: never)\n"
    "  --mend-score S     least mean score of such a join (default 0)\n"
    "  --behind N         batch, after the joins and --uncross: join a track that ends\n"
    "                     hidden behind another track (its last boxes covered by it) to a\n"
    "                     track that starts 1 to N frames later hidden by the same one,\n"
    "                     whatever the velocities, when no other end or start could join\n"
    "                     either (neither at the frame's border); the hidden frames are\n"
    "                     filled linearly (default 0: never)\n"
    "  --behind-cover F   hidden: more than F of the box covered by the other's (default 0.2)\n"
    "  --behind-margin M  with a CHECKPOINT, an end or start with rivals joins the pair whose\n"
    "                     mean score (as --mend) beats every rival by more than M (default 0)\n"
    "  --interpolate N    fill the frames a track skips, for gaps up to N frames\n"
    "                     (default 15; 0: never)\n"
    "  --extrapolate N    extend each track up to N frames before its first and after\n"
    "                     its last detection at its end velocity, clipped to the frame\n"
    "                     (default 0: never)\n"
    "  --help             this text\n";

typedef struct NumOpt {
    const char *name;
    double min, max;
    int integer;
    void *dst;
} NumOpt;

/* Parses argv[*i] if it is one of opts (a number option). 1 matched, 0 not
 * one of them, -1 bad value (message printed). */
static int num_option(const char *cmd, const NumOpt *opts, int nopts, int argc, char **argv, int *i) {
    for (int k = 0; k < nopts; k++) {
        if (strcmp(argv[*i], opts[k].name)) continue;
        const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
        double d;
        long l;
        int bad = !v || (opts[k].integer ? parse_long(v, (long)opts[k].min, (long)opts[k].max, &l)
                                         : parse_double(v, opts[k].min, opts[k].max, &d));
        if (bad) {
            fprintf(stderr, "siamese %s: %s %s: expected a%s number in [%g, %g]\n", cmd, opts[k].name,
                    v ? v : "", opts[k].integer ? " whole" : "", opts[k].min, opts[k].max);
            return -1;
        }
        if (opts[k].integer)
            *(int *)opts[k].dst = (int)l;
        else
            *(double *)opts[k].dst = d;
        (*i)++;
        return 1;
    }
    return 0;
}

/* The sequence, its detections and (with a checkpoint) their embeddings. */
typedef struct TrackInput {
    MotSeq s;
    MotBoxes det;
    CnnAppearance cnn;
    int has_cnn;
} TrackInput;

static void input_close(TrackInput *in) {
    mot_boxes_free(&in->det);
    mot_seq_close(&in->s);
    if (in->has_cnn) cnn_appearance_close(&in->cnn);
    memset(in, 0, sizeof *in);
}

/* Opens seq (and its gt when want_gt) and embeds its detections with the
 * network of ckpt (NULL: none). */
static int input_open(TrackInput *in, const char *seq, const char *ckpt, MotBoxes *gt, Err *e) {
    memset(in, 0, sizeof *in);
    if (mot_seq_open(&in->s, seq, e)) return -1;
    int rc = mot_seq_boxes(&in->s, MOT_DET, &in->det, e);
    if (!rc && gt) rc = mot_seq_boxes(&in->s, MOT_GT, gt, e);
    if (!rc && ckpt) {
        rc = cnn_appearance_open(&in->cnn, ckpt, e);
        in->has_cnn = !rc;
        if (!rc) rc = cnn_appearance_embed(&in->cnn, &in->s, &in->det, e);
    }
    if (rc) input_close(in);
    return rc;
}

int cmd_track(int argc, char **argv) {
    const char *seq = NULL, *out = NULL, *appearance = NULL, *combiner = NULL, *mode = "online", *ckpt = NULL,
               *relink_combiner = NULL;
    /* the defaults depend on the mode and on whether there is a network: look first */
    int pre_ckpt = 0, pre_batch = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            pre_ckpt = 1;
        else if (i + 1 < argc)
            pre_batch |= !strcmp(argv[i], "--mode") && !strcmp(argv[i + 1], "batch"), i++;
    }
    TrackOptions o;
    track_options_default(&o, pre_batch, pre_ckpt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(track_usage, stdout);
            return 0;
        }
        Err oe = {""};
        int r = track_option_parse(&o, a, v, &oe);
        if (r < 0) {
            fprintf(stderr, "siamese track: %s\n", oe.msg);
            return 2;
        }
        if (r) {
            i++;
            continue;
        }
        if (a[0] != '-' && !ckpt) {
            ckpt = a;
            continue;
        }
        const char **dst = !strcmp(a, "--seq")               ? &seq
                           : !strcmp(a, "--out")             ? &out
                           : !strcmp(a, "--appearance")      ? &appearance
                           : !strcmp(a, "--combiner")        ? &combiner
                           : !strcmp(a, "--mode")            ? &mode
                           : !strcmp(a, "--relink-combiner") ? &relink_combiner
                                                             : NULL;
        if (!dst) {
            fprintf(stderr, "siamese track: unexpected argument '%s' (siamese track --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "siamese track: %s needs a value (siamese track --help)\n", a);
            return 2;
        }
        *dst = v;
        i++;
    }
    if (!seq || !out) {
        fprintf(stderr, "siamese track: --seq DIR and --out FILE are required (siamese track --help)\n");
        return 2;
    }
    if (!ckpt == !appearance || (appearance && strcmp(appearance, "none"))) {
        fprintf(stderr, "siamese track: give a CHECKPOINT (the siamese tracker) or --appearance none (the "
                        "motion/IoU-only tracker)\n");
        return 2;
    }
    if (strcmp(mode, "online") && strcmp(mode, "batch")) {
        fprintf(stderr, "siamese track: --mode %s: expected online or batch\n", mode);
        return 2;
    }
    o.batch = !strcmp(mode, "batch");
    if (o.uncross && (!ckpt || !o.batch)) {
        fprintf(stderr, "siamese track: --uncross needs a CHECKPOINT and --mode batch\n");
        return 2;
    }
    if (o.behind && !o.batch) {
        fprintf(stderr, "siamese track: --behind needs --mode batch\n");
        return 2;
    }
    if (o.mend && (!ckpt || !o.batch)) {
        fprintf(stderr, "siamese track: --mend needs a CHECKPOINT and --mode batch\n");
        return 2;
    }
    if (o.merge_gap && (!ckpt || !o.batch || o.merge_gap <= o.max_gap)) {
        fprintf(
            stderr,
            "siamese track: --merge-gap %d needs a CHECKPOINT, --mode batch and a gap above --max-gap (%d)\n",
            o.merge_gap, o.max_gap);
        return 2;
    }
    if (o.relink && (!ckpt || !o.batch)) {
        fprintf(stderr, "siamese track: --relink needs a CHECKPOINT and --mode batch\n");
        return 2;
    }
    /* options that act only through another: refused alone rather than ignored */
    const struct {
        const char *opt, *needs;
        int on;
    } dep[] = {{"--uncross-iou", "--uncross N", o.uncross > 0},
               {"--uncross-margin", "--uncross N", o.uncross > 0},
               {"--mend-score", "--mend N", o.mend > 0},
               {"--merge-gate", "--merge-gap N", o.merge_gap > 0},
               {"--behind-cover", "--behind N", o.behind > 0},
               {"--behind-margin", "--behind N", o.behind > 0},
               {"--relink-motion", "--relink N or --merge-gap N", o.relink > 0 || o.merge_gap > 0}};
    for (size_t k = 0; k < sizeof dep / sizeof *dep; k++)
        for (int i = 1; i < argc && !dep[k].on; i++)
            if (!strcmp(argv[i], dep[k].opt)) {
                fprintf(stderr, "siamese track: %s acts only with %s: add it, or leave %s out\n", dep[k].opt,
                        dep[k].needs, dep[k].opt);
                return 2;
            }
    Err e = {""};
    LinkModel m;
    link_model_default(&m);
    if (ckpt) m.appearance = 1, m.w[0] = 1; /* the network's score as log-odds, without a combiner */
    if (combiner && link_model_read(&m, combiner, &e)) {
        fprintf(stderr, "siamese track: %s\n", e.msg);
        return 1;
    }
    if (m.appearance != !!ckpt) {
        fprintf(stderr,
                "siamese track: %s was fitted %s an appearance score; fit one %s (siamese track-fit)\n",
                combiner, m.appearance ? "with" : "without",
                ckpt ? "with this CHECKPOINT" : "with --appearance none");
        return 1;
    }
    LinkModel rm;
    if (relink_combiner) {
        if (!ckpt || !o.batch || !o.relink) {
            fprintf(stderr,
                    "siamese track: --relink-combiner needs a CHECKPOINT, --mode batch and --relink N\n");
            return 2;
        }
        if (link_model_read(&rm, relink_combiner, &e)) {
            fprintf(stderr, "siamese track: %s\n", e.msg);
            return 1;
        }
        if (!rm.appearance) {
            fprintf(stderr,
                    "siamese track: %s was fitted without an appearance score; fit one with this CHECKPOINT "
                    "(siamese track-fit --relink-from)\n",
                    relink_combiner);
            return 1;
        }
        o.relink_model = &rm;
    }
    TrackInput in;
    if (input_open(&in, seq, ckpt, NULL, &e)) {
        fprintf(stderr, "siamese track: %s\n", e.msg);
        return 1;
    }
    Appearance app = {&in.cnn, cnn_appearance_score};
    o.width = (float)in.s.info.width, o.height = (float)in.s.info.height;
    MotBoxes res;
    double t0 = now_seconds();
    int rc = track_run(&res, &in.det, &m, ckpt ? &app : NULL, &o, &e);
    double dt = now_seconds() - t0 + in.cnn.embed_seconds;
    if (!rc) rc = mot_write_boxes(out, &res, MOT_RES, &e);
    if (rc) {
        fprintf(stderr, "siamese track: %s\n", e.msg);
    } else {
        int32_t ids = 0;
        for (size_t i = 0; i < res.n; i++) ids = MAX(ids, res.box[i].id);
        int F = in.s.info.frames;
        printf("%s: %d frames, %zu detections (%.1f per frame) -> %d tracks, %zu boxes (%s, %.1f frames/s",
               in.s.info.name, F, in.det.n, (double)in.det.n / F, ids, res.n, mode, F / MAX(dt, 1e-9));
        if (ckpt) printf("; embedding %.1f frames/s", F / MAX(in.cnn.embed_seconds, 1e-9));
        if (ckpt && in.cnn.pairwise)
            printf("; %ld pairs scored, %.0f pairs/s", in.cnn.pairs,
                   in.cnn.pairs / MAX(in.cnn.score_seconds, 1e-9));
        printf(") -> %s\n", out);
        mot_boxes_free(&res);
    }
    input_close(&in);
    return rc ? 1 : 0;
}

static const char draw_usage[] =
    "usage: siamese mot-draw --seq DIR --frame N --out FILE.png [--boxes gt|det|FILE] [--zoom Z]\n"
    "\n"
    "Draws frame N of a MOTChallenge sequence with boxes and track ids as an RGB PNG.\n"
    "\n"
    "  --seq DIR      the sequence\n"
    "  --frame N      frame number (1-based)\n"
    "  --out FILE     PNG to write\n"
    "  --boxes B      gt: the ground truth (default); det: the detections (no ids);\n"
    "                 a result file of the sequence\n"
    "  --zoom Z       enlarge the frame Z times (whole number, default 2)\n"
    "  --help         this text\n";

int cmd_mot_draw(int argc, char **argv) {
    const char *seq = NULL, *out = NULL, *boxes = "gt";
    int frame = 0, zoom = 2;
    const NumOpt nums[] = {{"--frame", 1, MOT_MAX_FRAMES, 1, &frame}, {"--zoom", 1, 16, 1, &zoom}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(draw_usage, stdout);
            return 0;
        }
        int r = num_option("mot-draw", nums, 2, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        const char **dst = !strcmp(a, "--seq")     ? &seq
                           : !strcmp(a, "--out")   ? &out
                           : !strcmp(a, "--boxes") ? &boxes
                                                   : NULL;
        if (!dst || !v) {
            fprintf(stderr, "siamese mot-draw: %s '%s' (siamese mot-draw --help)\n",
                    dst ? "a value is needed after" : "unexpected argument", a);
            return 2;
        }
        *dst = v;
        i++;
    }
    if (!seq || !out || !frame) {
        fprintf(stderr,
                "siamese mot-draw: --seq, --frame and --out are required (siamese mot-draw --help)\n");
        return 2;
    }
    Err e = {""};
    MotSeq s;
    MotBoxes b = {0};
    uint8_t *big = NULL;
    int rc = -1;
    if (mot_seq_open(&s, seq, &e)) goto out;
    if (frame > s.info.frames) {
        err_set(&e, "--frame %d: %s has %d frames", frame, s.info.name, s.info.frames);
        goto out;
    }
    if (!strcmp(boxes, "gt") || !strcmp(boxes, "det")) {
        if (mot_seq_boxes(&s, !strcmp(boxes, "gt") ? MOT_GT : MOT_DET, &b, &e)) goto out;
    } else if (mot_read_boxes(boxes, MOT_RES, &s.info, &b, &e)) {
        goto out;
    }
    int H, W;
    if (draw_mot_frame(&big, &H, &W, &s, &b, frame, zoom, &e)) goto out;
    rc = image_write_png(out, big, (uint32_t)H, (uint32_t)W, 3, &e);
out:
    if (rc) fprintf(stderr, "siamese mot-draw: %s\n", e.msg);
    free(big);
    mot_boxes_free(&b);
    mot_seq_close(&s);
    return rc ? 1 : 0;
}

static const char fit_usage[] =
    "usage: siamese track-fit CHECKPOINT --seq DIR [--seq DIR ...] --out FILE\n"
    "       siamese track-fit --appearance none --seq DIR [--seq DIR ...] --out FILE\n"
    "                         [--features all|score|context] [--max-gap N] [--max-speed V]\n"
    "                         [--relink-from FILE [--gallery N] [--gallery-score best|mean]\n"
    "                          [--relink-motion M] [--entry-cost C] [--skip-cost C] [--gate P]\n"
    "                          [--min-score S]]\n"
    "\n"
    "Fits the tracker's link model (the combiner) on sequences with ground truth: a\n"
    "logistic regression of 'same target' on the contextual features of every detection\n"
    "pair the batch tracker considers, and of 'true detection' on the detection score.\n"
    "With a CHECKPOINT the network's score for the two crops is a feature too. Prints\n"
    "each feature set's log-loss, accuracy and ROC AUC on every sequence held out in\n"
    "turn (with a CHECKPOINT: the network's score alone, the contextual features alone,\n"
    "both), and writes the model of --features fitted on every sequence to FILE (for\n"
    "track --combiner).\n"
    "\n"
    "  CHECKPOINT         a trained matching network; A,B,...: an ensemble (as track)\n"
    "  --appearance none  contextual features only (IoU, distance, size, time gap)\n"
    "  --seq DIR          a sequence with gt/gt.txt and det/det.txt (repeat)\n"
    "  --out FILE         combiner file to write\n"
    "  --features F       the features of the model written: all (default with a\n"
    "                     CHECKPOINT), score (the network's score alone), context\n"
    "                     (default without: IoU, distance, size, time gap)\n"
    "  --max-gap N        pairs up to N frames apart (default 15, as track)\n"
    "  --max-speed V      pairs moving at most V box heights per frame (default 0.5)\n"
    "  --relink-from FILE with a CHECKPOINT: each pair's network score is the gallery score\n"
    "                     that track --mode batch --relink 1 gives it, from the tracks of the\n"
    "                     batch tracker with the combiner FILE (fit for track\n"
    "                     --relink-combiner); --gallery, --gallery-score, --relink-motion,\n"
    "                     --entry-cost, --skip-cost, --gate and --min-score as for track\n"
    "                     (batch defaults)\n"
    "  --help             this text\n";

/* Held-out quality of a feature set: each sequence predicted by the model
 * fitted on the others, pooled. */
static void report_features(const char *what, const FitSamples *s, const int *use, int nseq) {
    double loss = 0, acc = 0, auc = 0;
    long n = 0;
    for (int k = 0; k < nseq; k++) {
        LinkModel m;
        fit_link_model(&m, s, use, nseq > 1 ? k : -1);
        FitQuality q = fit_quality(&m, s, k);
        loss += q.logloss * q.n, acc += q.accuracy * q.n, auc += q.auc * q.n, n += q.n;
    }
    printf("  %-22s log-loss %.4f  accuracy %.4f  ROC AUC %.4f  (%ld pairs%s)\n", what, loss / MAX(n, 1),
           acc / MAX(n, 1), auc / MAX(n, 1), n, nseq > 1 ? ", each sequence held out" : ", training fit");
}

int cmd_track_fit(int argc, char **argv) {
    const char *out = NULL, *appearance = NULL, *ckpt = NULL, *features = NULL, *relink_from = NULL;
    const char **seqs = xmalloc(sizeof(char *) * (size_t)(argc + 1));
    int nseq = 0, pre_ckpt = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            pre_ckpt = 1;
        else
            i++;
    }
    TrackOptions o;
    track_options_default(&o, 1, pre_ckpt); /* the batch tracker's candidate pairs (and first flow) */
    /* the batch tracker's options that shape its candidates or, for --relink-from, its first flow */
    static const char *const tuning[] = {"--max-gap",    "--max-speed", "--min-score",
                                         "--gate",       "--gallery",   "--gallery-score",
                                         "--entry-cost", "--skip-cost", "--relink-motion"};
    const char *flow_opt = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(fit_usage, stdout);
            free(seqs);
            return 0;
        }
        int r = 0;
        for (size_t k = 0; k < sizeof tuning / sizeof tuning[0] && !r; k++) {
            if (strcmp(a, tuning[k])) continue;
            Err oe = {""};
            r = track_option_parse(&o, a, v, &oe);
            if (r < 0) {
                fprintf(stderr, "siamese track-fit: %s\n", oe.msg);
                goto usage;
            }
            if (k >= 3 && !flow_opt) flow_opt = tuning[k]; /* --gate onwards: the first flow's only */
        }
        if (r) {
            i++;
            continue;
        }
        if (a[0] != '-' && !ckpt) {
            ckpt = a;
            continue;
        }
        if (!v || (strcmp(a, "--seq") && strcmp(a, "--out") && strcmp(a, "--appearance") &&
                   strcmp(a, "--features") && strcmp(a, "--relink-from"))) {
            fprintf(stderr, "siamese track-fit: %s '%s' (siamese track-fit --help)\n",
                    v ? "unexpected argument" : "a value is needed after", a);
            goto usage;
        }
        if (!strcmp(a, "--seq")) seqs[nseq++] = v;
        if (!strcmp(a, "--out")) out = v;
        if (!strcmp(a, "--appearance")) appearance = v;
        if (!strcmp(a, "--features")) features = v;
        if (!strcmp(a, "--relink-from")) relink_from = v;
        i++;
    }
    if (flow_opt && !relink_from) {
        fprintf(stderr,
                "siamese track-fit: %s shapes the first flow of --relink-from: add --relink-from FILE\n",
                flow_opt);
        goto usage;
    }
    if (!features) features = ckpt ? "all" : "context";
    if (strcmp(features, "all") && strcmp(features, "score") && strcmp(features, "context")) {
        fprintf(stderr, "siamese track-fit: --features %s: expected all, score or context\n", features);
        goto usage;
    }
    if (!ckpt && strcmp(features, "context")) {
        fprintf(stderr, "siamese track-fit: --features %s needs a CHECKPOINT\n", features);
        goto usage;
    }
    if (!nseq || !out || !ckpt == !appearance || (appearance && strcmp(appearance, "none"))) {
        fprintf(stderr,
                "siamese track-fit: give a CHECKPOINT or --appearance none, --seq DIR (one or more) and "
                "--out FILE (siamese track-fit --help)\n");
        goto usage;
    }
    Err e = {""};
    LinkModel first;
    if (relink_from) {
        if (!ckpt || !strcmp(features, "context")) {
            fprintf(stderr, "siamese track-fit: --relink-from needs a CHECKPOINT and the network's score "
                            "(--features all or score)\n");
            goto usage;
        }
        if (link_model_read(&first, relink_from, &e)) {
            fprintf(stderr, "siamese track-fit: %s\n", e.msg);
            free(seqs);
            return 1;
        }
        if (!first.appearance) {
            fprintf(stderr,
                    "siamese track-fit: --relink-from %s was fitted without an appearance score; give a "
                    "combiner fitted with this CHECKPOINT\n",
                    relink_from);
            free(seqs);
            return 1;
        }
        o.relink = 1;
    }
    FitSamples s = {0};
    int rc = 0;
    for (int k = 0; k < nseq && !rc; k++) {
        TrackInput in;
        MotBoxes gt = {0};
        rc = input_open(&in, seqs[k], ckpt, &gt, &e);
        if (rc) break;
        Appearance app = {&in.cnn, cnn_appearance_score};
        rc = fit_add_sequence(&s, k, &in.det, &gt, ckpt ? &app : NULL, relink_from ? &first : NULL, &o, &e);
        mot_boxes_free(&gt);
        input_close(&in);
    }
    if (!rc && s.n == 0) rc = err_set(&e, "no detection pairs in the sequences: nothing to fit");
    if (!rc) {
        int geo[TRACK_NFEAT] = {0, 1, 1, 1, 1, 1, 1, 1}, cnn[TRACK_NFEAT] = {1},
            all[TRACK_NFEAT] = {1, 1, 1, 1, 1, 1, 1, 1};
        printf("%d pairs from %d sequences (%.1f %% same target), %d detections\n", s.n, nseq,
               100.0 * fit_positive_fraction(&s), s.nd);
        if (ckpt) report_features("network score alone", &s, cnn, nseq);
        report_features("contextual features", &s, geo, nseq);
        if (ckpt) report_features("network + contextual", &s, all, nseq);
        LinkModel m;
        const int *use = !strcmp(features, "all") ? all : !strcmp(features, "score") ? cnn : geo;
        fit_link_model(&m, &s, use, -1);
        char comment[512];
        char gal[256] = "";
        if (relink_from)
            snprintf(gal, sizeof gal, " (gallery %s of %d after the flow with %s)",
                     o.gallery_mean ? "means" : "bests", o.gallery, relink_from);
        snprintf(comment, sizeof comment, "%s%s%s, %d sequences, %d pairs",
                 !strcmp(features, "all")     ? "network score and contextual features of "
                 : !strcmp(features, "score") ? "network score alone of "
                                              : "contextual features",
                 ckpt ? ckpt : "", gal, nseq, s.n);
        rc = link_model_write(&m, out, comment, &e);
        if (!rc) printf("wrote %s\n", out);
    }
    if (rc) fprintf(stderr, "siamese track-fit: %s\n", e.msg);
    fit_samples_free(&s);
    free(seqs);
    return rc ? 1 : 0;
usage:
    free(seqs);
    return 2;
}
