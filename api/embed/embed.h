/* The embedding provider (api/embed, library mn_embed): vectors for memories and recall
 * cues that come with text only, from an OpenAI-compatible POST /v1/embeddings endpoint
 * named by [embedding] (docs/config.md; docs/api.md, "Embedding provider").
 *
 * One provider per process. A space uses it when its dim is embedding.dim, its name is in
 * embedding.spaces ("*" = all) and the model it recorded (embedding_model) is
 * embedding.model, or it recorded none (spaces made before the field or without a
 * provider); "" recorded = never. GET of a space names it ("embedding_provider"). A space
 * created while the provider applies to it records its model (mn_embed_space_new).
 *
 * - remember: the doors call mn_embed_remembered after the engine acknowledged; the memories
 *   (ids) go to a bounded queue and a background thread ("embed") reads their texts, sends
 *   them in batches and writes the vectors through the WAL (mn_engine_embed). A failing provider is retried with
 *   exponential backoff; memories that did not fit the queue, or whose vector was lost,
 *   are found by the backfill scan (mn_engine_unembedded) at start, every
 *   backfill_interval_s, and when the provider answers again.
 * - recall: mn_embed_cue embeds a text-only cue within timeout_ms; when it cannot, the
 *   recall runs on words and its hits carry the reason embedding_unavailable.
 *
 * Thread-safe: the doors call it from any handler thread. */
#ifndef MN_API_EMBED_H
#define MN_API_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/metrics.h"

typedef struct mn_embed mn_embed_t;

/* Checks the [embedding] settings together (url, model and dim given together; the url
 * parses; the API key variable is set; the CA file loads). MN_OK when off. */
mn_err mn_embed_config_check(const mn_config_embedding_t *c, mn_error *err);
/* Starts the provider over engine (*out NULL when [embedding] is off). The thread begins
 * with a backfill scan. */
mn_err mn_embed_start(const mn_config_embedding_t *c, mn_engine_t *engine, mn_embed_t **out,
                      mn_error *err);
/* Stops the thread (the queued texts are dropped: the next start's scan finds them) and
 * frees everything. NULL is fine. Call before closing the engine. */
void mn_embed_stop(mn_embed_t *em);

/* The model name when space def uses the provider, else NULL. em NULL: NULL. */
const char *mn_embed_model_for(const mn_embed_t *em, const mn_space_def_t *def);
/* Does the provider embed the texts of space (by name)? em NULL: false. */
bool mn_embed_space_uses(const mn_embed_t *em, const char *space);
/* Before a space is created: when def names no model and the provider applies to it,
 * records the provider's model in def (so a later embedding.model cannot mix models in
 * it). em NULL: nothing. */
void mn_embed_space_new(const mn_embed_t *em, mn_space_def_t *def);
/* After a remember in space acknowledged: queues the memories that came without an
 * embedding (mems[i] with id ids[i]). Never blocks on the provider. */
void mn_embed_remembered(mn_embed_t *em, const char *space, const mn_memory_t *mems,
                         const mn_id_t *ids, size_t n);
/* A recall cue: when the cue has text and no embedding and space uses the provider, embeds
 * the text (waiting at most timeout_ms) into *vec (malloc'd, the caller frees) and *dim.
 * When that fails, *unavailable is set and *vec is NULL (the recall goes on by words).
 * Otherwise nothing happens (*vec NULL, *unavailable false). */
void mn_embed_cue(mn_embed_t *em, const char *space, bool has_embedding, const char *text,
                  size_t text_len, float **vec, uint32_t *dim, bool *unavailable);
/* mn_engine_recall of req in space with the cue mn_embed_cue makes (embed_recall.c): what
 * every door's recall runs. em may be NULL (no provider). */
mn_err mn_embed_recall(mn_embed_t *em, mn_engine_t *e, const char *space,
                       const mn_recall_req_t *req, mn_recall_result_t *out, mn_error *err);
/* Writes the mnemo_embedding_* families of GET /metrics (nothing when em is NULL). */
void mn_embed_metrics(mn_embed_t *em, mn_text_t *t);
/* Blocks until the queue is empty and no batch is in flight, or timeout_ms passes (tests,
 * tools). True when idle. */
bool mn_embed_wait_idle(mn_embed_t *em, int64_t timeout_ms);

#endif
