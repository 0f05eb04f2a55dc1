/* norm: see norm.h. */
#include "norm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

_Static_assert(NORM_MAX_CHANNELS == DS_MAX_CHANNELS, "a normalisation per dataset channel");

int norm_parse_list(const char *text, double min, double max, float *out) {
    char buf[32 * NORM_MAX_CHANNELS];
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, text, len + 1);
    int n = 0;
    for (char *p = buf;; n++) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        double d;
        if (n == NORM_MAX_CHANNELS || parse_double(p, min, max, &d)) return -1;
        out[n] = (float)d;
        if (!comma) return n + 1;
        p = comma + 1;
    }
}

void norm_format(char *buf, size_t cap, const float *v, int n) {
    size_t k = 0;
    buf[0] = 0;
    for (int c = 0; c < n && k < cap; c++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%.9g", c ? "," : "", v[c]);
}

void norm_uniform(Norm *out, int channels, float mean, float std) {
    ASSERT(channels >= 1 && channels <= NORM_MAX_CHANNELS);
    memset(out, 0, sizeof *out);
    out->channels = channels;
    for (int c = 0; c < channels; c++) out->mean[c] = mean, out->std[c] = std;
}

/* One key: "0" (take ds), one value, or `channels` values. */
static int resolve_key(float *out, const char *text, const char *key, double max, int channels,
                       const float *ds, int is_std, const char *where, Err *e) {
    float v[NORM_MAX_CHANNELS];
    int n = norm_parse_list(text, 0.0, max, v);
    if (n == 1 && v[0] == 0.0f) {
        for (int c = 0; c < channels; c++) out[c] = is_std && !(ds[c] > 0) ? 1.0f : ds[c];
        return 0;
    }
    if (n != 1 && n != channels)
        return err_set(e,
                       "%s: [data] %s = '%s': give 0 (the training set's), one number in 0..%g, or %d "
                       "comma-separated (one per channel)",
                       where, key, text, max, channels);
    for (int c = 0; c < channels; c++) {
        out[c] = v[n == 1 ? 0 : c];
        if (is_std && !(out[c] > 0))
            return err_set(e, "%s: [data] std = '%s': channel %d has std 0; every std must be > 0", where,
                           text, c);
    }
    return 0;
}

int norm_resolve(Norm *out, const char *mean_text, const char *std_text, int channels, const float *ds_mean,
                 const float *ds_std, const char *where, Err *e) {
    memset(out, 0, sizeof *out);
    if (channels < 1 || channels > NORM_MAX_CHANNELS)
        return err_set(e, "%s: %d input channels; normalisation handles 1..%d", where, channels,
                       NORM_MAX_CHANNELS);
    out->channels = channels;
    if (resolve_key(out->mean, mean_text, "mean", 1.0, channels, ds_mean, 0, where, e) ||
        resolve_key(out->std, std_text, "std", 10.0, channels, ds_std, 1, where, e))
        return -1;
    return 0;
}

int norm_fit(Norm *out, const Norm *in, int channels, const char *path, Err *e) {
    if (in->channels != 1 && in->channels != channels)
        return err_set(e, "%s: its normalisation has %d values per key for a %d-channel model — the file is damaged",
                       path, in->channels, channels);
    norm_uniform(out, channels, 0.0f, 1.0f);
    for (int c = 0; c < channels; c++) {
        out->mean[c] = in->mean[in->channels == 1 ? 0 : c];
        out->std[c] = in->std[in->channels == 1 ? 0 : c];
    }
    return 0;
}

void norm_table(float *table, const Norm *n, int c) {
    for (int v = 0; v < 256; v++) table[v] = ((float)v / 255.0f - n->mean[c]) / n->std[c];
}

void norm_apply(float *x, const uint8_t *px, const Norm *n, size_t plane) {
    float t[256];
    for (int c = 0; c < n->channels; c++) {
        norm_table(t, n, c);
        const uint8_t *p = px + (size_t)c * plane;
        float *y = x + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) y[i] = t[p[i]];
    }
}
