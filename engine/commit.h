/* The commit queue (commit.c): every write of the engine is a WAL op handed to
 * the commit thread, which gives it the space's next lsn, applies it into a
 * group batch and writes the group with one fsync. */
#ifndef MN_ENGINE_COMMIT_H
#define MN_ENGINE_COMMIT_H

#include "mnemo/wire.h"
#include "space.h"

/* A memory's encoded term list, made once by apply and used twice: stored in
 * the keywords family, and added to the in-memory index. */
typedef struct mn__kw_buf {
    uint8_t *buf; /* malloc'd; NULL for a memory without content */
    size_t len;
} mn__kw_buf;

/* One op on its way through the commit thread. */
typedef struct mn__pending {
    bool has_entry;       /* the committer wrote entry in this group */
    bool *accepted;       /* remember: per memory of entry, written or not */
    mn_memory_t *compact; /* remember: the accepted subset the entry carries */
    mn__kw_buf *kw;       /* remember, consolidate: per memory of entry */
    size_t n_kw;
    mn_wal_entry_t entry; /* op filled by the caller; lsn/epoch/hlc by the committer */
    mn__space *sp;        /* referenced by the caller for the op's life */
    bool sync;
    /* remember: per memory, the id to report (from idempotency, an exact
     * duplicate, or the new id), and (when not NULL) whether it is a duplicate */
    mn_id_t *ids_out;
    bool *dup_out;
    uint8_t (*dedup)[16];          /* remember: per memory of compact, its dedup hash (dedup.c);
                                    * NULL in a space with dedup off */
    const uint8_t (*dedup_in)[16]; /* remember: per memory of entry, its hash computed by
                                    * the caller off the commit thread (NULL: computed here) */
    bool foreign;        /* the entry comes from another engine's log (mn_engine_ingest) */
    bool forget_unknown; /* replicated: a forget met an id unknown here (tombstoned) */
    /* replicated: why memories of the entry were left out (replica.c says it): stored or
     * tombstoned here already, or (a semantic memory) listing an episode forgotten here */
    uint32_t left_here, left_blocked;
    /* replica.c: the entry is the primary's, stored at its own lsn as raw[0..raw_len): no
     * dedup judgement, no re-derivation; one that changes nothing here is stored (noop) */
    bool replicated;
    bool noop;
    /* engine.c: a space drop of a replica's copy this node no longer holds
     * (mn_engine_space_discard): taken whatever the role, and not handed to the WAL hook (nothing
     * to ship) */
    bool discard;
    const uint8_t *raw;
    size_t raw_len;
    /* replica.c: an op without an entry (type NONE) that sets sp's role and epoch, or
     * (set_hook) the engine's WAL hook */
    bool set_role, set_hook;
    mn_space_role_t role;
    uint64_t role_epoch;
    mn_wal_hook_fn hook;
    void *hook_arg;
    struct mn__snap_op *snap; /* snapshot.c: an op without an entry of a snapshot install */
    bool keep_accepted;       /* the caller reads (and frees) accepted after the commit */
    bool derived;             /* made by the commit thread (a re-derivation): it frees it */
    /* filled by apply: the change in the space's tombstone count, and the
     * semantic memories that listed an episode this entry erased (re-derived
     * at the end of the group) */
    int64_t tombstones;
    /* filled by apply (forget, invalidate; versions.c): the versions the entry's memory id
     * stands for, its lineage's current one first (mn__apply_memory acts on them) */
    mn_id_t *versions;
    size_t n_versions;
    /* a forget batch: the WAL entries its erasures rewrite, decoded once and written
     * once at its end (apply.c); NULL for every other op (each erasure writes through) */
    struct mn__walcache *walcache;
    mn_id_t *rederive;
    size_t n_rederive, cap_rederive;
    /* results */
    mn_err rc;
    mn_error err;
    bool done;
    struct mn__pending *next;
} mn__pending;

/* Sets up p for an op of type on space sp (sp NULL for a space creation, whose
 * entry names the space): the entry's type and space name, durability. */
void mn__pending_init(mn__pending *p, mn_wal_op_type_t type, mn__space *sp, bool sync);

/* Starts the commit thread (its queue is e's until mn__commit_stop). */
mn_err mn__commit_start(mn_engine_t *e, mn_error *err);
/* Commits what is queued, then stops the thread. */
void mn__commit_stop(mn_engine_t *e);
/* Queues p, waits until committed; returns p->rc. */
mn_err mn__commit_submit(mn_engine_t *e, mn__pending *p);
/* Several at once (one group); waits for all. */
void mn__commit_submit_many(mn_engine_t *e, mn__pending **ps, size_t n);
/* Test hook: while held, the commit thread takes no new group, so the writers
 * that arrive queue up and are committed as one group on release. */
void mn__commit_hold(mn_engine_t *e, bool hold);
/* Ops queued and not yet taken by the commit thread (test hook). */
size_t mn__commit_queued(mn_engine_t *e);
/* Commit thread, while it stages an op of a group: the ops staged before it (*ps; those
 * with has_entry were applied into the group's batch). */
size_t mn__commit_group_before(mn_engine_t *e, mn__pending *const **ps);
/* Is the caller the commit thread? (For the "commit thread only" checks.) */
bool mn__commit_on_thread(const mn_engine_t *e);

#endif
