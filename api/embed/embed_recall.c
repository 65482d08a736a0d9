/* A recall as every door runs it on this node: a text-only cue in a space with an embedding
 * provider is embedded first (mn_embed_cue, bounded by embedding.timeout_ms); when the
 * provider cannot answer, the recall runs on words and its hits carry the reason
 * embedding_unavailable. The REST and gRPC recall handlers and the local holder of a recall
 * over many spaces (api/query_local.c) call this one function, so a memory scores the same
 * through each of them. */
#include "embed.h"

#include <stdlib.h>

mn_err mn_embed_recall(mn_embed_t *em, mn_engine_t *e, const char *space,
                       const mn_recall_req_t *req, mn_recall_result_t *out, mn_error *err)
{
    mn_recall_req_t r = *req;
    float *cue = NULL;
    bool no_vector = false;
    mn_embed_cue(em, space, r.embedding != NULL, r.text, r.text_len, &cue, &r.dim, &no_vector);
    if (cue) r.embedding = cue;
    mn_err rc = mn_engine_recall(e, space, &r, out, err);
    free(cue);
    for (size_t i = 0; !rc && no_vector && i < out->n_hits; i++)
        out->hits[i].confidence.reasons |= MN_REASON_EMBEDDING_UNAVAILABLE;
    return rc;
}
