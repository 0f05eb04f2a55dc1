/* appearance: see appearance.h. The frame is decoded with the network's
 * channel count (grey or RGB), each detection cropped to the input size by
 * area averaging (mot_crop) and normalised per channel (norm_apply) with
 * the training statistics the checkpoint recorded. */
#include "appearance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/image.h"
#include "../mining/pairs.h"

enum { APP_MAX_BATCH = 256 }; /* crops per forward pass (a frame with more takes several) */

int cnn_appearance_open(CnnAppearance *a, const char *checkpoint, Err *e) {
    memset(a, 0, sizeof *a);
    char path[4096];
    for (const char *p = checkpoint;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int first = p == checkpoint, rc = 0;
        EvalModel *em = NULL;
        if (!len || len >= sizeof path) {
            rc = err_set(e, "%s: expected checkpoints separated by commas", checkpoint);
        } else {
            memcpy(path, p, len);
            path[len] = 0;
            em = first ? &a->em : xcalloc(1, sizeof *em);
            rc = eval_model_load(em, path, APP_MAX_BATCH, e);
            if (rc && !first)
                free(em);
            else if (!rc)
                rc = first ? cnn_appearance_init(a, path, e) : cnn_appearance_add(a, em, path, e);
        }
        if (rc) {
            if (!first) cnn_appearance_close(a); /* a failed init has freed the first network */
            return -1;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* Whether m embeds each image for a distance score (no head, not pairwise). */
static int embeds_for_distance(const Model *m) {
    return m->emb >= 0 && !m->has_head && !(m->pair && m->layers[m->loss].halved);
}

int cnn_appearance_add(CnnAppearance *a, EvalModel *em, const char *name, Err *e) {
    const Model *m = &em->model;
    int rc = 0;
    if (a->nmore + 1 >= APP_MAX_MODELS)
        rc = err_set(e, "%s: more than %d networks in an ensemble", name, APP_MAX_MODELS);
    else if (!embeds_for_distance(&a->em.model) || !embeds_for_distance(m))
        rc = err_set(e,
                     "%s: an ensemble needs networks that embed each image (no Koch head, not scoring "
                     "pairs); %s does not",
                     name, embeds_for_distance(m) ? "the first" : "this one");
    else if (m->in_c != a->C || m->in_h != a->H || m->in_w != a->W)
        rc = err_set(e, "%s: the network takes %dx%dx%d, the first %dx%dx%d", name, m->in_c, m->in_h, m->in_w,
                     a->C, a->H, a->W);
    if (rc) {
        eval_model_free(em);
        free(em);
        return rc;
    }
    a->more[a->nmore++] = em;
    a->dim[a->nmore] = m->emb_dim;
    a->D += m->emb_dim;
    return 0;
}

int cnn_appearance_init(CnnAppearance *a, const char *checkpoint, Err *e) {
    const Model *m = &a->em.model;
    if (m->in_c != 1 && m->in_c != 3) {
        eval_model_free(&a->em);
        return err_set(e, "%s: the network takes %d channels; a tracker's crops are grey (1) or RGB (3)",
                       checkpoint, m->in_c);
    }
    a->C = m->in_c, a->H = m->in_h, a->W = m->in_w, a->D = a->dim[0] = m->emb_dim;
    /* a graph whose loss reads a pair-level node scores pairs itself (early
     * fusion, or towers joined by learned layers): its score is that output */
    a->pairwise = m->pair && m->layers[m->loss].halved && !m->has_head;
    if (m->emb < 0 && !a->pairwise) {
        eval_model_free(&a->em);
        return err_set(e, "%s: the network has no per-image embedding and does not score pairs", checkpoint);
    }
    if (a->pairwise) {
        a->D = a->C * a->H * a->W;
        a->x = xaligned_floats((size_t)m->max_batch * a->D);
    }
    return 0;
}

int cnn_appearance_embed(CnnAppearance *a, const MotSeq *s, const MotBoxes *det, Err *e) {
    double t0 = now_seconds();
    size_t per = (size_t)a->C * a->H * a->W;
    free(a->emb);
    a->n = det->n;
    a->emb = xcalloc(det->n * (size_t)a->D + 1, sizeof(float));
    uint8_t *crop = xmalloc(per * APP_MAX_BATCH);
    float *x = xmalloc(sizeof(float) * per * APP_MAX_BATCH);
    float scale = 1 / sqrtf((float)(1 + a->nmore));
    int rc = 0;
    for (int32_t f = 1; f <= det->frames && !rc; f++) {
        size_t i0 = det->first[f], i1 = det->first[f + 1];
        if (i0 == i1) continue;
        char path[4200];
        mot_frame_path(s, f, path, sizeof path);
        Image img;
        if (image_load_color(&img, path, a->C == 3, e)) {
            rc = -1;
            break;
        }
        for (size_t i = i0; i < i1; i += APP_MAX_BATCH) {
            int B = (int)MIN((size_t)APP_MAX_BATCH, i1 - i);
            for (int k = 0; k < B; k++) mot_crop(crop + (size_t)k * per, &img, &det->box[i + k], a->H, a->W);
            if (!a->nmore) {
                for (int k = 0; k < B; k++)
                    norm_apply(x + (size_t)k * per, crop + (size_t)k * per, &a->em.norm, (size_t)a->H * a->W);
                /* pairwise networks keep the crops: the pairs are scored later */
                const float *E = a->pairwise ? x : model_embed(&a->em.model, x, B);
                memcpy(a->emb + i * (size_t)a->D, E, sizeof(float) * (size_t)B * a->D);
                continue;
            }
            /* an ensemble: each network's embedding, scaled, in its columns */
            for (int n = 0, off = 0; n <= a->nmore; off += a->dim[n++]) {
                EvalModel *em = n ? a->more[n - 1] : &a->em;
                for (int k = 0; k < B; k++)
                    norm_apply(x + (size_t)k * per, crop + (size_t)k * per, &em->norm, (size_t)a->H * a->W);
                const float *E = model_embed(&em->model, x, B);
                for (int k = 0; k < B; k++)
                    for (int j = 0; j < a->dim[n]; j++)
                        a->emb[(i + k) * (size_t)a->D + off + j] = scale * E[(size_t)k * a->dim[n] + j];
            }
        }
        image_free(&img);
        a->frames++;
    }
    free(crop);
    free(x);
    a->embed_seconds += now_seconds() - t0;
    return rc;
}

/* Networks that score pairs: rows [crops of a; crops of b], up to half
 * the model's rows each, in inference mode. */
static void score_pairwise(CnnAppearance *a, const int *pa, const int *pb, int n, double *out) {
    Model *m = &a->em.model;
    int B = m->max_batch / 2, train = m->st.train;
    size_t per = (size_t)a->D;
    double t0 = now_seconds();
    m->st.train = 0;
    for (int k0 = 0; k0 < n; k0 += B) {
        int nb = MIN(B, n - k0);
        for (int k = 0; k < nb; k++) {
            memcpy(a->x + (size_t)k * per, a->emb + (size_t)pa[k0 + k] * per, sizeof(float) * per);
            memcpy(a->x + (size_t)(nb + k) * per, a->emb + (size_t)pb[k0 + k] * per, sizeof(float) * per);
        }
        const float *z = model_forward(m, a->x, 2 * nb);
        for (int k = 0; k < nb; k++) out[k0 + k] = z[k];
    }
    m->st.train = train;
    a->pairs += n;
    a->score_seconds += now_seconds() - t0;
}

int cnn_appearance_score(void *ctx, const int *pa, const int *pb, int n, double *out, Err *e) {
    (void)e;
    CnnAppearance *a = ctx;
    for (int k = 0; k < n; k++) ASSERT((size_t)pa[k] < a->n && (size_t)pb[k] < a->n);
    if (a->pairwise) {
        score_pairwise(a, pa, pb, n, out);
        return 0;
    }
    const Model *m = &a->em.model;
    int D = a->D;
    for (int k = 0; k < n; k++) {
        const float *x = a->emb + (size_t)pa[k] * D, *y = a->emb + (size_t)pb[k] * D;
        if (m->has_head) {
            out[k] = pairs_koch_logit(x, y, m->params + m->head_w_off, m->params[m->head_b_off], D);
        } else {
            double d2 = 0;
            for (int j = 0; j < D; j++) d2 += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
            out[k] = -sqrt(d2);
        }
    }
    return 0;
}

void cnn_appearance_close(CnnAppearance *a) {
    eval_model_free(&a->em);
    for (int n = 0; n < a->nmore; n++) {
        eval_model_free(a->more[n]);
        free(a->more[n]);
    }
    free(a->emb);
    free(a->x);
    memset(a, 0, sizeof *a);
}
