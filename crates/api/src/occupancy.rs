//! How many of something each key holds at once (connections per address,
//! sockets per user), with a cap: a place is taken by [`Occupancy::enter`] and
//! given back when its [`Place`] is dropped, so a count can never leak.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Places held per key; at most `most` per key (0 for no limit).
pub struct Occupancy<K: Hash + Eq + Copy> {
    held: Arc<Mutex<HashMap<K, usize>>>,
    most: usize,
}

impl<K: Hash + Eq + Copy> Clone for Occupancy<K> {
    fn clone(&self) -> Self {
        Occupancy { held: Arc::clone(&self.held), most: self.most }
    }
}

impl<K: Hash + Eq + Copy> Occupancy<K> {
    pub fn new(most: usize) -> Self {
        Occupancy { held: Arc::default(), most }
    }

    /// Takes a place for `key`, or `None` when it holds `most` already.
    pub fn enter(&self, key: K) -> Option<Place<K>> {
        let mut held = self.held.lock().ok()?;
        let count = held.entry(key).or_default();
        if self.most != 0 && *count >= self.most {
            return None;
        }
        *count += 1;
        Some(Place { key, held: Arc::clone(&self.held) })
    }
}

/// One place held; dropping it gives it back.
pub struct Place<K: Hash + Eq + Copy> {
    key: K,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Copy> Drop for Place<K> {
    fn drop(&mut self) {
        let Ok(mut held) = self.held.lock() else { return };
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_key_and_given_back_when_dropped() {
        let occupancy = Occupancy::new(2);
        let first = occupancy.enter('a').unwrap();
        let _second = occupancy.enter('a').unwrap();
        assert!(occupancy.enter('a').is_none());
        assert!(occupancy.enter('b').is_some(), "another key has its own places");
        drop(first);
        assert!(occupancy.enter('a').is_some());
        assert!(Occupancy::new(0).enter('a').is_some(), "0 is no limit");
    }
}
