// Downloads a model repo from the Hugging Face Hub into the standard Hugging Face cache, the way
// huggingface_hub's snapshot_download does it, so files already fetched by Python are reused and
// the other way round.
//
// Online: the Hub's file list (GET {endpoint}/api/models/{repo}/revision/{rev}) gives the commit;
// each needed file missing from snapshots/{commit}/ is looked up with a HEAD on
// {endpoint}/{repo}/resolve/{commit}/{file} (ETag, X-Linked-Etag, X-Linked-Size, X-Repo-Commit;
// only relative redirects followed, for renamed repos), then fetched unless blobs/{etag} exists:
// GET following redirects (large files live on a CDN), the token sent only to the endpoint's
// origin, into blobs/{etag}.incomplete which a later run resumes with a Range request. Sizes
// are checked before the blob is renamed into place.
//
// Cached: when refs/{revision} names a commit whose snapshot has config.json, the weights and
// every other wanted file (or a .no_exist marker for it), that snapshot is returned without
// network. HF_HUB_OFFLINE uses only this path and fails naming what is missing.
#pragma once

#include <string>

#include "io/hub_options.h"

namespace plm {

// Returns the local snapshot folder (.../models--org--name/snapshots/{commit}) holding every
// needed file. Errors (plm::Error, one line naming the repo and file): kInvalidArgument for a
// malformed id, a gated repo or a rejected token (the message says to set HF_TOKEN); kNotFound
// for an unknown repo, revision or file and for files missing in offline mode; kIo for network
// and disk failures (an interrupted download says that running again resumes it); kCorrupt for
// a server reply that does not add up.
std::string DownloadModel(const std::string& repo_id, const HubOptions& options);

}  // namespace plm
