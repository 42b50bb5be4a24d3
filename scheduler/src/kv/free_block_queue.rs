//! Free blocks in the order they should be reused, as an intrusive doubly linked list over
//! block indices: O(1) pop from the front, push at either end, and removal from the middle
//! (a cached block that gets a new prefix hit leaves the queue without a scan).
//!
//! The front holds what is cheapest to lose: blocks without a cached hash first, then cached
//! blocks in least-recently-freed order. That order is what makes eviction LRU.

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
pub struct FreeBlockQueue {
    prev: Vec<u32>,
    next: Vec<u32>,
    in_queue: Vec<bool>,
    head: u32,
    tail: u32,
    len: usize,
}

impl FreeBlockQueue {
    /// A queue holding blocks `0..num_blocks` in id order.
    pub fn new(num_blocks: usize) -> Self {
        assert!(
            num_blocks < NIL as usize,
            "block ids must fit below u32::MAX"
        );
        let mut q = Self {
            prev: vec![NIL; num_blocks],
            next: vec![NIL; num_blocks],
            in_queue: vec![false; num_blocks],
            head: NIL,
            tail: NIL,
            len: 0,
        };
        for b in 0..num_blocks as u32 {
            q.push_back(b);
        }
        q
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, block: u32) -> bool {
        self.in_queue[block as usize]
    }

    pub fn pop_front(&mut self) -> Option<u32> {
        if self.head == NIL {
            return None;
        }
        let b = self.head;
        self.remove(b);
        Some(b)
    }

    pub fn push_back(&mut self, block: u32) {
        let i = block as usize;
        debug_assert!(!self.in_queue[i], "block {block} freed twice");
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = block;
        } else {
            self.next[self.tail as usize] = block;
        }
        self.tail = block;
        self.in_queue[i] = true;
        self.len += 1;
    }

    pub fn push_front(&mut self, block: u32) {
        let i = block as usize;
        debug_assert!(!self.in_queue[i], "block {block} freed twice");
        self.next[i] = self.head;
        self.prev[i] = NIL;
        if self.head == NIL {
            self.tail = block;
        } else {
            self.prev[self.head as usize] = block;
        }
        self.head = block;
        self.in_queue[i] = true;
        self.len += 1;
    }

    /// Unlinks `block` from anywhere in the queue.
    pub fn remove(&mut self, block: u32) {
        let i = block as usize;
        debug_assert!(self.in_queue[i], "block {block} is not free");
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.in_queue[i] = false;
        self.len -= 1;
    }

    /// Blocks from front to back (for invariant checks and tests).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let b = cur;
            cur = self.next[b as usize];
            Some(b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_from_the_middle_keeps_order() {
        let mut q = FreeBlockQueue::new(5);
        q.remove(2);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![0, 1, 3, 4]);
        q.remove(0);
        q.remove(4);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![1, 3]);
        q.push_front(4);
        q.push_back(0);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![4, 1, 3, 0]);
        assert_eq!(q.pop_front(), Some(4));
        assert_eq!(q.len(), 3);
        while q.pop_front().is_some() {}
        assert!(q.is_empty());
        q.push_back(2);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![2]);
    }
}
