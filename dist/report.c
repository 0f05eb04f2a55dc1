/* report: see report.h. This file reads the run directories, evaluates a
 * checkpoint when it can, and assembles the document from the panels. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../io/atomic_file.h"
#include "../io/checkpoint.h"
#include "../io/image.h"
#include "train.h"

/* Per-run panels, in page order. A panel of one kind of run has a predicate
 * (shown) and is left out of other runs' pages. */
static const struct {
    const char *id, *title;
    ReportPanel fn;
    ReportPanelShown shown; /* NULL: every run */
} run_panels[] = {
    {"timing", "Time per step", panel_timing, NULL},
    {"coseg", "Co-segmentation", panel_coseg, panel_coseg_shown},
    {"evaluation", "Evaluation", panel_eval_run, NULL},
    {"retrieval", "Retrieval examples", panel_retrieval, NULL},
    {"map", "Embedding map", panel_map, NULL},
    {"tracking", "Tracking", panel_tracking, panel_tracking_shown},
    {"config", "Run", panel_config, NULL},
};
#define NRUN_PANELS (int)(sizeof run_panels / sizeof run_panels[0])

void report_missing(Buf *b, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_puts(b, "<p class=\"missing\">");
    buf_esc(b, msg);
    buf_puts(b, "</p>\n");
}

double report_json_number(const char *json, const char *key) {
    if (!json) return NAN;
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ') p++;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

int report_png(Buf *b, const uint8_t *pixels, int h, int w, int ch, const char *alt, Err *e) {
    uint8_t *png;
    size_t n;
    if (image_encode_png(&png, &n, pixels, (uint32_t)h, (uint32_t)w, (uint32_t)ch, e)) return -1;
    buf_puts(b, "<img alt=\"");
    buf_esc(b, alt);
    buf_puts(b, "\" src=\"data:image/png;base64,");
    buf_base64(b, png, n);
    buf_puts(b, "\">");
    free(png);
    return 0;
}

int report_json_array(double *out, int n, const char *json, const char *key) {
    for (int k = 0; k < n; k++) out[k] = NAN;
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) return 0;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p++ != '[') return 0;
    int k = 0;
    for (; k < n; k++) {
        while (*p == ' ') p++;
        if (!strncmp(p, "null", 4)) {
            p += 4;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p) break;
            out[k] = v, p = end;
        }
        while (*p == ' ') p++;
        if (*p != ',') {
            k++;
            break;
        }
        p++;
    }
    return k;
}

/* ---- reading a run directory ----------------------------------------------- */

static char *read_text(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *d;
    size_t n;
    Err e;
    if (access(path, F_OK) != 0 || file_read_whole(path, (size_t)64 << 20, "a text file", &d, &n, &e))
        return NULL;
    return (char *)d;
}

static void read_csv(CsvTable *t, const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    Err e;
    if (access(path, F_OK) != 0 || csv_read(t, path, &e)) {
        if (access(path, F_OK) == 0) util_warn("report: %s", e.msg);
        csv_free(t);
    }
}

/* model.smpi, or else the newest checkpoint that verifies; "" if none. */
static void find_checkpoint(char *out, size_t n, const char *dir) {
    snprintf(out, n, "%s/model.smpi", dir);
    if (access(out, R_OK) == 0) return;
    Ckpt *ck;
    Err e;
    char path[1024];
    out[0] = 0;
    if (ckpt_read_latest(&ck, path, sizeof path, dir, &train_ckpt_bounds, &e) == 0) {
        snprintf(out, n, "%s", path);
        ckpt_free(ck);
    }
}

/* The evaluation of the run's checkpoint on its data (or o->data). */
static void evaluate_run(ReportRun *r, const ReportOptions *o, int index) {
    if (index == 0 && o->eval0 && o->detail0) { /* siamese train's own: borrowed, not freed */
        r->er = *o->eval0;
        r->ed = *o->detail0;
        r->borrowed = 1;
        r->eval_seconds = o->eval0->seconds;
        snprintf(r->data_path, sizeof r->data_path, "%s", o->data ? o->data : r->cfg.data_test);
        Err e;
        if (ds_open(&r->ds, r->data_path, &e)) {
            snprintf(r->eval_missing, sizeof r->eval_missing, "%s", e.msg);
            return;
        }
        r->labels = ds_labels(r->ds);
        r->have_eval = 1;
        return;
    }
    if (o->no_eval) {
        snprintf(r->eval_missing, sizeof r->eval_missing,
                 "the run was not evaluated at its end ([train] eval = 0, or no [data] test): the ROC, "
                 "histograms, retrieval examples and embedding map come with siamese report %s",
                 r->dir);
        return;
    }
    const char *data = o->data ? o->data : r->config_text ? r->cfg.data_test : "";
    snprintf(r->data_path, sizeof r->data_path, "%s", data);
    if (!r->ckpt[0]) {
        snprintf(
            r->eval_missing, sizeof r->eval_missing,
            "no checkpoint in %s (model.smpi or ckpt-*.smpi): the ROC, histograms, retrieval examples and "
            "embedding map need one",
            r->dir);
        return;
    }
    if (!data[0]) {
        snprintf(
            r->eval_missing, sizeof r->eval_missing,
            "no test dataset: the run's [data] test is empty and --data was not given; the ROC, histograms, "
            "retrieval examples and embedding map need one (siamese report %s --data DB)",
            r->dir);
        return;
    }
    Err e;
    EvalModel m;
    double t0 = now_seconds();
    if (!o->quiet) printf("report: evaluating %s on %s\n", r->ckpt, data), fflush(stdout);
    if (eval_model_load(&m, r->ckpt, 256, &e)) {
        snprintf(r->eval_missing, sizeof r->eval_missing, "cannot load the checkpoint: %s", e.msg);
        return;
    }
    /* The threshold comes from training pairs when the training set opens. */
    const char *train = access(m.cfg.data_train, R_OK) == 0 ? m.cfg.data_train : NULL;
    if (eval_run_detail(&m.model, &m.cfg, &m.norm, data, train, &r->er, &r->ed, &e)) {
        snprintf(r->eval_missing, sizeof r->eval_missing, "evaluation failed: %s", e.msg);
        eval_model_free(&m);
        return;
    }
    if (!r->world) r->world = m.world;
    eval_model_free(&m);
    if (ds_open(&r->ds, data, &e)) {
        snprintf(r->eval_missing, sizeof r->eval_missing, "%s", e.msg);
        eval_detail_free(&r->ed);
        return;
    }
    r->labels = ds_labels(r->ds);
    r->have_eval = 1;
    r->eval_seconds = now_seconds() - t0;
}

/* Whether the run's test set (open, or else --data or [data] test) is MOT
 * crops made by import --format mot. */
static int data_is_mot(const ReportRun *r, const ReportOptions *o) {
    if (r->ds) return !strcmp(ds_meta(r->ds)->source, "mot");
    const char *data = o->data ? o->data : r->config_text ? r->cfg.data_test : "";
    Dataset *ds;
    Err e;
    if (!data[0] || access(data, R_OK) != 0 || ds_open(&ds, data, &e)) return 0;
    int mot = !strcmp(ds_meta(ds)->source, "mot");
    ds_close(ds);
    return mot;
}

/* Rank count: ranks.csv's last start, else command.log's last line. */
static int run_world(const ReportRun *r) {
    int c = csv_col(&r->ranks, "ranks");
    if (c >= 0 && r->ranks.nrow > 0) return (int)r->ranks.v[(size_t)(r->ranks.nrow - 1) * r->ranks.ncol + c];
    if (r->command_log) {
        const char *last = NULL;
        for (const char *p = r->command_log; (p = strstr(p, " rank")); p++) last = p;
        if (last) {
            const char *q = last;
            while (q > r->command_log && q[-1] >= '0' && q[-1] <= '9') q--;
            return atoi(q);
        }
    }
    return 0;
}

static void load_run(ReportRun *r, const char *dir, int index, const ReportOptions *o) {
    memset(r, 0, sizeof *r);
    r->dir = dir;
    r->color = index;
    r->map_points = o->map_points > 0 ? o->map_points : 10000;
    r->tsne = o->tsne;
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(r->name, sizeof r->name, "%.*s", (int)(len - start), dir + start);
    read_csv(&r->metrics, dir, "metrics.csv");
    read_csv(&r->timing, dir, "timing.csv");
    read_csv(&r->ranks, dir, "ranks.csv");
    read_csv(&r->valid, dir, "eval.csv");
    csv_dedupe_sorted(&r->timing, csv_col(&r->timing, "step"));
    csv_dedupe_sorted(&r->valid, csv_col(&r->valid, "step"));
    r->command_log = read_text(dir, "command.log");
    r->resume_log = read_text(dir, "resume.log");
    r->eval_json = read_text(dir, "eval.json");
    find_checkpoint(r->ckpt, sizeof r->ckpt, dir);
    r->config_text = read_text(dir, "config.ini");
    if (!r->config_text && r->ckpt[0]) {
        Ckpt *ck;
        Err e;
        size_t n;
        if (ckpt_read(&ck, r->ckpt, &train_ckpt_bounds, &e) == 0) {
            const char *t = ckpt_get(ck, "config", &n);
            if (t) r->config_text = strndup(t, n);
            ckpt_free(ck);
        }
    }
    Err e;
    if (r->config_text && config_parse_text(&r->cfg, r->config_text, "config.ini", &e)) {
        util_warn("report: %s/config.ini: %s", dir, e.msg);
        free(r->config_text);
        r->config_text = NULL;
    }
    r->world = run_world(r);
    r->coseg = r->config_text && r->cfg.loss.type == LOSS_MASK;
    if (r->coseg) /* scored by its masks (report_coseg.c), not by an embedding */
        snprintf(r->eval_missing, sizeof r->eval_missing,
                 "a co-segmentation model ([loss] type = mask) predicts masks, not embeddings to compare: "
                 "no ROC, pair-distance histograms, Recall@K, retrieval examples or embedding map; its masks "
                 "are scored and drawn in the Co-segmentation section");
    else
        evaluate_run(r, o, index);
    r->gt_root = o->gt_root;
    r->res_root = index < o->nres ? o->res_roots[index] : NULL;
    r->mot_data = data_is_mot(r, o);
}

static void free_run(ReportRun *r) {
    csv_free(&r->metrics);
    csv_free(&r->timing);
    csv_free(&r->ranks);
    csv_free(&r->valid);
    free(r->command_log);
    free(r->resume_log);
    free(r->eval_json);
    free(r->config_text);
    if (r->have_eval && !r->borrowed) eval_detail_free(&r->ed);
    if (r->ds) ds_close(r->ds);
    report_coseg_free(r);
}

/* ---- the document --------------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1180px;padding:8px 20px "
    "40px;color:#222}"
    "h1{font-size:22px;margin:14px 0 4px}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid #ddd}"
    "h3{font-size:15px;margin:16px 0 6px}.sub{color:#666;margin:0 0 10px}"
    ".charts{display:flex;flex-wrap:wrap;gap:10px 18px}figure.chart{margin:0}"
    "figure.chart svg{max-width:100%;height:auto;background:#fff}"
    "svg text{font:12px system-ui,sans-serif;fill:#333}svg text.title{font-size:13px;font-weight:600}"
    "svg text.axis{font-size:12px;fill:#444}svg text.tick{fill:#555;font-size:11px}"
    "svg text.legend{font-size:11.5px}svg text.marker{fill:#b00;font-size:11px}"
    "svg .frame{fill:none;stroke:#999}svg .grid{stroke:#eee}svg .line{fill:none;stroke-width:1.6}"
    "svg .dashed{stroke-dasharray:5 3}svg .band{opacity:.18;stroke:none}svg .area{opacity:.85;stroke:none}"
    "svg line.marker{stroke:#b00;stroke-dasharray:4 3;stroke-width:1.3}"
    "svg text.marker{paint-order:stroke;stroke:#fff;stroke-width:3px}svg .cursor{stroke:#888;stroke-width:.8}"
    "svg .hist rect{fill-opacity:.35;stroke-width:.8}svg "
    ".dots{fill:none;stroke-width:3.2;stroke-linecap:round}"
    ".readout{font:12px monospace;color:#333;min-height:16px;margin:0 0 0 64px}"
    "figcaption{font-size:12px;color:#555;max-width:660px}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}"
    ".missing{background:#fff6e0;border-left:4px solid #e0a000;padding:5px 10px;margin:6px 0}"
    "pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:420px;font-size:12px}"
    ".queries{display:grid;grid-template-columns:max-content 1fr;gap:6px 14px;align-items:start}"
    ".thumb{display:inline-block;text-align:center;margin:0 3px 0 0;font-size:11px;vertical-align:top}"
    ".thumb img{width:56px;height:56px;image-rendering:pixelated;border:3px solid #999;display:block}"
    ".thumb.right img{border-color:#2a9d3a}.thumb.wrong img{border-color:#d62f2f}.thumb.query "
    "img{border-color:#222}"
    ".thumb.right span{color:#2a9d3a}.thumb.wrong span{color:#d62f2f}nav a{margin-right:12px}"
    ".frames{display:flex;flex-wrap:wrap;gap:8px 12px}figure.frame{margin:0}"
    "figure.frame img{width:372px;image-rendering:pixelated;display:block}"
    ".pairs{display:flex;flex-wrap:wrap;gap:10px 22px}.pair{display:flex;flex-wrap:wrap;gap:4px 8px}"
    ".pairhead{flex-basis:100%;font-size:12px;color:#444}figure.mask{margin:0;display:inline-block;"
    "vertical-align:top;margin-right:6px}figure.mask img{display:block;image-rendering:pixelated}figure.mask "
    "figcaption{font-size:11px}table.side td{vertical-align:top}"
    ".swatch{display:inline-block;width:14px;height:10px;vertical-align:middle}.swatch.outline{border:2px "
    "solid;width:10px;height:6px}";

/* Hover: the nearest point of every series of a chart, under the chart. */
static const char script[] =
    "(function(){function f(v){if(v===null)return'-';if(Number.isInteger(v))return String(v);var "
    "a=Math.abs(v);"
    "return a!==0&&(a<1e-3||a>=1e6)?v.toExponential(3):(a>=100?v.toFixed(1):v.toPrecision(4));}"
    "document.querySelectorAll('svg[data-series]').forEach(function(svg){"
    "var s=JSON.parse(svg.getAttribute('data-series')),ax=JSON.parse(svg.getAttribute('data-axes'));"
    "var out=svg.parentNode.querySelector('.readout'),cur=svg.querySelector('.cursor');"
    "svg.addEventListener('mousemove',function(ev){var m=svg.getScreenCTM();if(!m||!s.length)return;"
    "var pt=svg.createSVGPoint();pt.x=ev.clientX;pt.y=ev.clientY;var p=pt.matrixTransform(m.inverse());"
    "var x=ax.x0+(p.x-ax.px0)/(ax.px1-ax.px0)*(ax.x1-ax.x0),parts=[],xs=null;"
    "s.forEach(function(se){var lo=0,hi=se.x.length-1;if(hi<0)return;while(hi-lo>1){var mid=(lo+hi)>>1;"
    "if(se.x[mid]<x)lo=mid;else hi=mid;}var i=Math.abs(se.x[lo]-x)<=Math.abs(se.x[hi]-x)?lo:hi;"
    "if(xs===null)xs=se.x[i];parts.push((se.n?se.n+' ':'')+f(se.y[i]));});"
    "if(xs===null)return;out.textContent=ax.xl+' '+f(xs)+':  '+parts.join(',  ');"
    "if(cur){var px=ax.px0+(xs-ax.x0)/(ax.x1-ax.x0)*(ax.px1-ax.px0);cur.setAttribute('x1',px);"
    "cur.setAttribute('x2',px);}});svg.addEventListener('mouseleave',function(){out.textContent='';"
    "if(cur){cur.setAttribute('x1',-10);cur.setAttribute('x2',-10);}});});})();";

static void header(Buf *b, const ReportRun *runs, int n, const char *when) {
    buf_puts(
        b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>siamese report: ");
    for (int i = 0; i < n; i++) {
        if (i) buf_puts(b, ", ");
        buf_esc(b, runs[i].name);
    }
    buf_printf(b, "</title><style>%s</style></head><body>\n<h1>", css);
    buf_puts(b, n > 1 ? "Runs " : "Run ");
    for (int i = 0; i < n; i++) {
        if (i) buf_puts(b, ", ");
        buf_esc(b, runs[i].name);
    }
    buf_puts(b, "</h1><p class=\"sub\">");
    for (int i = 0; i < n; i++) {
        buf_puts(b, i ? "; " : "");
        buf_esc(b, runs[i].dir);
    }
    buf_printf(b,
               " &mdash; report by %s, %s</p>\n<nav><a href=\"#summary\">summary</a><a href=\"#curves\">"
               "training curves</a>",
               SIAMESE_VERSION, when);
    for (int p = 0; p < NRUN_PANELS; p++)
        for (int i = 0; i < n; i++)
            if (!run_panels[p].shown || run_panels[p].shown(&runs[i])) {
                buf_printf(b, "<a href=\"#%s-%d\">%s</a>", run_panels[p].id, i, run_panels[p].id);
                break;
            }
    buf_puts(b, "</nav>\n");
}

int report_write(const ReportOptions *o, Err *e) {
    if (o->nruns < 1) return err_set(e, "report: no run directory given");
    char out[1200];
    if (o->out)
        snprintf(out, sizeof out, "%s", o->out);
    else if (o->nruns == 1)
        snprintf(out, sizeof out, "%s/report.html", o->runs[0]);
    else
        return err_set(e, "report: %d run directories: name the output with --out FILE.html", o->nruns);
    for (int i = 0; i < o->nruns; i++) {
        struct stat st;
        if (stat(o->runs[i], &st) != 0 || !S_ISDIR(st.st_mode))
            return err_set(e, "%s: not a run directory (%s)", o->runs[i],
                           errno ? strerror(errno) : "not a directory");
    }
    double t0 = now_seconds();
    ReportRun *runs = xcalloc((size_t)o->nruns, sizeof *runs);
    for (int i = 0; i < o->nruns; i++) load_run(&runs[i], o->runs[i], i, o);
    /* Co-segmentation runs draw the same seeded pairs: the first run's seed. */
    uint64_t pair_seed = runs[0].config_text ? (uint64_t)runs[0].cfg.seed : 1;
    int embedding_runs = 0;
    for (int i = 0; i < o->nruns; i++) {
        if (runs[i].coseg) report_coseg_load(&runs[i], o, i, pair_seed);
        embedding_runs += !runs[i].coseg;
    }
    /* Names must tell runs apart: fall back to the whole path. */
    for (int i = 0; i < o->nruns; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(runs[i].name, runs[j].name))
                snprintf(runs[i].name, sizeof runs[i].name, "%s", runs[i].dir);
    char when[64] = "?";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    Buf b = {0};
    header(&b, runs, o->nruns, when);
    panel_summary(&b, runs, o->nruns);
    panel_curves(&b, runs, o->nruns);
    panel_validation(&b, runs, o->nruns);
    if (o->nruns > 1 && embedding_runs) panel_eval_overlay(&b, runs, o->nruns);
    if (o->nruns > 1) panel_coseg_compare(&b, runs, o->nruns);
    for (int i = 0; i < o->nruns; i++) {
        if (o->nruns > 1) {
            buf_puts(&b, "<h2 class=\"run\">Run ");
            buf_esc(&b, runs[i].name);
            buf_puts(&b, "</h2>\n");
        }
        for (int p = 0; p < NRUN_PANELS; p++) {
            if (run_panels[p].shown && !run_panels[p].shown(&runs[i])) continue;
            buf_printf(&b, "<section id=\"%s-%d\" data-panel=\"%s\"><h%d>%s</h%d>\n", run_panels[p].id, i,
                       run_panels[p].id, o->nruns > 1 ? 3 : 2, run_panels[p].title, o->nruns > 1 ? 3 : 2);
            double tp = now_seconds();
            run_panels[p].fn(&b, &runs[i]);
            if (!o->quiet && now_seconds() - tp > 1.0)
                printf("report: %s: %s took %.1f s\n", runs[i].name, run_panels[p].id, now_seconds() - tp);
            buf_puts(&b, "</section>\n");
        }
    }
    buf_printf(&b, "<p class=\"sub\">Generated in %.1f s.</p><script>%s</script></body></html>\n",
               now_seconds() - t0, script);
    int rc = atomic_file_write_all(out, b.p, b.len, e);
    if (rc == 0 && !o->quiet)
        printf("report: wrote %s (%.0f KB) in %.1f s\n", out, b.len / 1024.0, now_seconds() - t0);
    buf_free(&b);
    for (int i = 0; i < o->nruns; i++) free_run(&runs[i]);
    free(runs);
    return rc;
}
