/* Tests of the report's building blocks: viz/html (escapes, base64 against
 * RFC 4648's vectors, number formatting), viz/plot's numeric helpers
 * (histogram counts and downsampling worked out by hand, tick steps), the
 * charts' SVG structure, io/csv (malformed and cut-short lines, resumed
 * duplicates) and image_encode_png (decoded back, grey and RGB). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/csv.h"
#include "../io/image.h"
#include "../viz/plot.h"
#include "test.h"

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p++) n++;
    return n;
}

static void test_html(void) {
    const char *in[7] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[7] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        Buf b = {0};
        buf_base64(&b, in[i], strlen(in[i]));
        CHECK(!strcmp(b.p ? b.p : "", want[i]), "base64(%s) = %s, want %s", in[i], b.p ? b.p : "", want[i]);
        buf_free(&b);
    }
    Buf b = {0};
    buf_esc(&b, "a<b & \"c\" 'd'>");
    CHECK(!strcmp(b.p, "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"), "escape: %s", b.p);
    buf_free(&b);
    buf_json_str(&b, "x'\"\\<\n");
    CHECK(!strcmp(b.p, "\"x\\u0027\\u0022\\u005c\\u003c\\u000a\""), "json string: %s", b.p);
    buf_free(&b);
    buf_json_num(&b, NAN);
    buf_puts(&b, ",");
    buf_json_num(&b, 0.25);
    CHECK(!strcmp(b.p, "null,0.25"), "json numbers: %s", b.p);
    buf_free(&b);
    char s[32];
    fmt_num(s, sizeof s, 0.123456);
    CHECK(!strcmp(s, "0.1235"), "fmt 0.123456: %s", s);
    fmt_num(s, sizeof s, 12345.6);
    CHECK(!strcmp(s, "12346"), "fmt 12345.6: %s", s);
    fmt_num(s, sizeof s, 2e-7);
    CHECK(!strcmp(s, "2e-07"), "fmt 2e-7: %s", s);
    fmt_num(s, sizeof s, NAN);
    CHECK(!strcmp(s, "-"), "fmt NaN: %s", s);
}

static void test_helpers(void) {
    /* bins of [0, 1] by 4: [0, .25) [.25, .5) [.5, .75) [.75, 1] */
    const double v[9] = {0, 0.1, 0.5, 0.99, 1.0, -0.1, 1.1, NAN, 0.25};
    double c[4];
    long n = plot_histogram(c, 4, 0, 1, v, 9);
    CHECK(n == 6 && c[0] == 2 && c[1] == 1 && c[2] == 1 && c[3] == 2, "histogram by hand: %ld: %g %g %g %g",
          n, c[0], c[1], c[2], c[3]);
    /* 10 points into 3 buckets: [0, 3) [3, 6) [6, 10) */
    double x[10], y[10], ox[3], oy[3], lo[3], hi[3];
    for (int i = 0; i < 10; i++) x[i] = i, y[i] = i * i;
    y[4] = NAN;
    int m = plot_downsample(ox, oy, lo, hi, x, y, 10, 3);
    CHECK(m == 3 && ox[0] == 1 && oy[0] == 5.0 / 3 && lo[0] == 0 && hi[0] == 4, "bucket 0: %g %g %g %g",
          ox[0], oy[0], lo[0], hi[0]);
    CHECK(ox[1] == 4 && oy[1] == (9 + 25) / 2.0 && lo[1] == 9 && hi[1] == 25, "bucket 1 skips the NaN: %g %g",
          ox[1], oy[1]);
    CHECK(ox[2] == 7.5 && oy[2] == (36 + 49 + 64 + 81) / 4.0 && hi[2] == 81, "bucket 2: %g %g", ox[2], oy[2]);
    CHECK(plot_downsample(ox, oy, lo, hi, x, y, 3, 3) == 3 && oy[2] == 4 && lo[2] == 4,
          "short series copied");
    CHECK(plot_tick_step(0, 1, 5) == 0.2 && plot_tick_step(0, 7, 5) == 2 && plot_tick_step(0, 100, 5) == 20 &&
              plot_tick_step(3, 3.4, 5) == 0.1,
          "tick steps");
}

static void test_charts(void) {
    double x[5] = {0, 1, 2, 3, 4}, y[5] = {1, 0.5, NAN, 0.25, 0.2};
    PlotSeries s[2] = {{"loss", x, y, NULL, NULL, 5, 0, PLOT_LINE},
                       {"it's", x, y, NULL, NULL, 5, 1, PLOT_POINTS}};
    PlotAxes a = plot_axes("t1", "Title <1>", "step", "loss");
    Buf b = {0};
    plot_lines(&b, &a, s, 2);
    CHECK(count(b.p, "<svg") == 1 && count(b.p, "</svg>") == 1 && count(b.p, "<figure") == 1 &&
              count(b.p, "</figure>") == 1,
          "one figure, one svg");
    CHECK(strstr(b.p, "data-figure=\"t1\"") && strstr(b.p, "Title &lt;1&gt;") && strstr(b.p, "it&#39;s"),
          "id, escaped title and legend");
    CHECK(count(b.p, "class=\"point\"") == 4, "4 finite points drawn as markers (%d)",
          count(b.p, "class=\"point\""));
    CHECK(count(b.p, "<path class=\"line") == 1 && count(b.p, " L") == 2,
          "the NaN splits the line: 2 segments");
    CHECK(strstr(b.p, "\"y\":[1,0.5,null,0.25,0.2]") != NULL, "hover data with null for NaN");
    buf_free(&b);
    float xy[8] = {0, 0, 1, 1, 2, 0, 3, 1};
    int cls[4] = {0, 1, -1, 0}, counts[2] = {2, 1};
    const char *names[2] = {"T-shirt", "a very long class name indeed, longer than twenty"};
    PlotAxes sa = plot_axes("map", "Map", "x", "y");
    plot_scatter(&b, &sa, xy, cls, 4, names, counts, 2, "1 class in grey");
    CHECK(count(b.p, "class=\"dots\"") == 3 && count(b.p, "h0") == 4,
          "a dot path per colour, a dot per point");
    CHECK(strstr(b.p, "a very long class n...") && strstr(b.p, "<figcaption>1 class in grey"),
          "legend and note");
    buf_free(&b);
    const double *ys[2] = {x, y};
    const char *ln[2] = {"a", "b"};
    plot_stacked(&b, &a, x, 5, ys, ln, 2);
    CHECK(count(b.p, "class=\"area\"") == 2, "two stacked areas");
    buf_free(&b);
    const char *cats[2] = {"rank 0", "rank 1"};
    double w0[2] = {1, 2}, w1[2] = {3, NAN};
    const double *vals[2] = {w0, w1};
    plot_bars(&b, &a, cats, 2, vals, ln, 2, 1);
    CHECK(count(b.p, "class=\"bar\"") == 4 && strstr(b.p, "rank 1, b: -"), "4 bars, the NaN one titled '-'");
    buf_free(&b);
}

static void test_csv(void) {
    char path[] = "/tmp/siamese-test-csv-XXXXXX";
    int fd = mkstemp(path);
    const char *text =
        "step,loss,lr\n0,1.5,0.1\n1,oops,0.1\n2,1.25\n3,1,0.1\n1,1.4,0.1\n3,0.5,0.1\n4,,nan\n5,0.9,0.1";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
    close(fd);
    CsvTable t;
    Err e;
    CHECK(csv_read(&t, path, &e) == 0, "csv_read: %s", e.msg);
    CHECK(t.ncol == 3 && t.nrow == 5 && t.skipped == 3 && t.first_bad == 3,
          "5 good rows, 3 skipped (bad number, short row, cut-short last line) from line 3: %d %d %d", t.nrow,
          t.skipped, t.first_bad);
    CHECK(csv_col(&t, "lr") == 2 && csv_col(&t, "nope") == -1, "columns by name");
    double *loss = csv_column(&t, 1);
    CHECK(loss[0] == 1.5 && loss[2] == 1.4 && loss[3] == 0.5 && isnan(loss[4]), "values, empty field as NaN");
    free(loss);
    csv_dedupe_sorted(&t, 0);
    CHECK(t.nrow == 4 && t.v[0] == 0 && t.v[3] == 1 && t.v[4] == 1.4 && t.v[6] == 3 && t.v[7] == 0.5 &&
              t.v[9] == 4,
          "dedupe keeps the last row of a step, sorted: %g %g %g", t.v[3], t.v[4], t.v[7]);
    csv_free(&t);
    unlink(path);
    CHECK(csv_read(&t, path, &e) == -1 && strstr(e.msg, path), "missing file named: %s", e.msg);
    csv_free(&t);
}

static void test_png(void) {
    uint8_t grey[6 * 5], rgb[6 * 5 * 3];
    for (int i = 0; i < 30; i++) grey[i] = (uint8_t)(i * 8);
    for (int i = 0; i < 90; i++) rgb[i] = (uint8_t)(i * 37);
    for (int c = 1; c <= 3; c += 2) {
        uint8_t *png;
        size_t n;
        Err e;
        CHECK(image_encode_png(&png, &n, c == 1 ? grey : rgb, 5, 6, (uint32_t)c, &e) == 0, "encode: %s",
              e.msg);
        Image img;
        CHECK(image_decode(&img, "mem", png, n, c == 3, &e) == 0, "decode: %s", e.msg);
        CHECK(img.height == 5 && img.width == 6 && img.channels == (uint32_t)c &&
                  !memcmp(img.pixels, c == 1 ? grey : rgb, 30 * (size_t)c),
              "PNG of %d channel(s) decodes to the same pixels", c);
        image_free(&img);
        free(png);
    }
}

int main(void) {
    test_html();
    test_helpers();
    test_charts();
    test_csv();
    test_png();
    return test_finish();
}
