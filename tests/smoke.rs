mod common;
use common::*;

#[test]
fn register_then_recover_returns_the_same_key() {
    let mut w = World::new(1);
    let registered = w.register(id(1), "correct horse").unwrap();
    assert_eq!(registered.generation, 1);
    let recovered = w.recover(id(1), "correct horse").unwrap();
    assert_eq!(recovered.backup_key, registered.backup_key);
}
