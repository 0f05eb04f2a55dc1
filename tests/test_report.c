/* Tests of the report's readers of eval.json (dist/report.c): numbers and
 * the Recall@K array, with nulls, spaces, a short array and absent keys,
 * against values written by hand. */
#include <math.h>

#include "../dist/report.h"
#include "test.h"

int main(void) {
    const char *j = "{\n  \"recall_at_k\": [0.724, 0.832,null, 1e-3 , 1],\n  \"samples\": 2000,\n"
                    "  \"eer\": null,\n  \"roc_auc\": 0.9232\n}\n";
    CHECK(report_json_number(j, "samples") == 2000 && report_json_number(j, "roc_auc") == 0.9232,
          "numbers by key");
    CHECK(isnan(report_json_number(j, "eer")) && isnan(report_json_number(j, "nope")) &&
              isnan(report_json_number(NULL, "eer")),
          "null, absent key and no file are NaN");
    double r[16];
    int n = report_json_array(r, 16, j, "recall_at_k");
    CHECK(n == 5 && r[0] == 0.724 && r[1] == 0.832 && isnan(r[2]) && r[3] == 1e-3 && r[4] == 1 &&
              isnan(r[5]) && isnan(r[15]),
          "array: %d values: %g %g %g %g %g", n, r[0], r[1], r[2], r[3], r[4]);
    n = report_json_array(r, 2, j, "recall_at_k");
    CHECK(n == 2 && r[1] == 0.832, "the first n of a longer array");
    CHECK(report_json_array(r, 16, j, "samples") == 0 && isnan(r[0]), "not an array");
    CHECK(report_json_array(r, 16, "{\"recall_at_k\": []}", "recall_at_k") == 0, "empty array");
    return test_finish();
}
