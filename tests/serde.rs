//! serde support (feature `serde`): messages travel as their strict wire
//! bytes, so a serde round trip is a wire round trip, and invalid values are
//! refused by serde too.
#![cfg(feature = "serde")]

mod common;
use backup_key_vault::client::Recovery;
use backup_key_vault::wire::RecoveryResponse;
use backup_key_vault::{FleetPublicKeys, RecoveryCode, StretchingParams};
use common::*;

#[test]
fn messages_round_trip_through_serde_as_their_wire_bytes() {
    let mut w = World::new(60);
    w.register(id(1), "c").unwrap();
    let code = RecoveryCode::new(b"c").unwrap();
    let (_, ke1) = Recovery::start(&mut w.rng, &w.config, id(1), &code).unwrap();
    let ke2 = w.vault.recovery_start(&mut w.rng, w.now, &ke1).unwrap();
    let json = serde_json::to_string(&ke2).unwrap();
    let back: RecoveryResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ke2);
    // The serde form is the wire encoding: one byte changed in the version
    // is refused exactly as the decoder refuses it.
    let mut bytes = ke2.to_bytes();
    bytes[1] = 9;
    let tampered = serde_json::to_string(&bytes).unwrap();
    assert!(serde_json::from_str::<RecoveryResponse>(&tampered).is_err());
}

#[test]
fn invalid_stretching_parameters_are_refused_by_serde() {
    let ok: StretchingParams =
        serde_json::from_str(r#"{"m_cost":65536,"t_cost":3,"p_cost":4}"#).unwrap();
    assert_eq!(ok, StretchingParams::default());
    assert!(
        serde_json::from_str::<StretchingParams>(r#"{"m_cost":65536,"t_cost":3,"p_cost":0}"#)
            .is_err()
    );
    let keys = w_keys();
    let json = serde_json::to_string(&keys).unwrap();
    assert_eq!(
        serde_json::from_str::<FleetPublicKeys>(&json).unwrap(),
        keys
    );
}

fn w_keys() -> FleetPublicKeys {
    World::new(61).secrets.public_keys()
}
