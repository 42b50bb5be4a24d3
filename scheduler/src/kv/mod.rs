//! The paged KV cache's bookkeeping (the memory itself lives in the engine).
//!
//! - `block_hash`: the hash chain that names a full block by everything before it.
//! - `free_block_queue`: free blocks in eviction order, with O(1) removal from the middle.
//! - `block_pool`: the arena of blocks, ref counts and the prefix cache's hash map.
//! - `kv_cache_manager`: per-sequence block tables on top of the pool.

pub mod block_hash;
pub mod block_pool;
pub mod free_block_queue;
pub mod kv_cache_manager;

pub use block_hash::{hash_block, hash_prompt_blocks, BlockHash};
pub use block_pool::{BlockId, BlockPool};
pub use kv_cache_manager::{CachedPrefix, KvCacheManager};
