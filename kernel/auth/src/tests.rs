//! Tokens as clients would present them: right, wrong, malformed, expired.

extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::*;

fn random(seed: u8) -> [u8; ID_BYTES + SECRET_BYTES] {
    core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

#[test]
fn a_minted_token_has_its_shape_and_checks_as_its_entry() {
    let (token, entry) = mint(random(1), "ops", Role::Operator, None);
    assert_eq!(token.len(), TOKEN_LEN);
    assert!(token.starts_with("plinth_"));
    assert_eq!(parse(token.as_bytes()).map(|(id, _)| id), Some(entry.id));
    let (t2, e2) = mint(random(2), "acme", Role::Tenant("acme".into()), None);
    let entries = [entry.clone(), e2.clone()];
    assert_eq!(
        check(&entries, Some(&bearer(&token)), None),
        Ok(&entries[0])
    );
    assert_eq!(check(&entries, Some(&bearer(&t2)), None), Ok(&entries[1]));
    // The scheme in any case, spaces around.
    let loose = format!("  bEaReR   {t2}  ");
    assert_eq!(
        check(&entries, Some(loose.as_bytes()), None),
        Ok(&entries[1])
    );
    // The entry keeps the secret's hash only.
    assert!(!format!("{entry:?}").contains(&token[24..]));
}

#[test]
fn wrong_and_malformed_credentials_are_refused_and_say_how() {
    let (token, entry) = mint(random(3), "ops", Role::Operator, None);
    let entries = [entry];
    let refused = |h: Option<&[u8]>| check(&entries, h, Some(0)).err();
    assert_eq!(refused(None), Some(Refusal::Missing));
    // The secret's last digit changed; the id changed; both are just unknown.
    let mut wrong = String::from(&token[..token.len() - 1]);
    wrong.push(if token.ends_with('0') { '1' } else { '0' });
    assert_eq!(refused(Some(&bearer(&wrong))), Some(Refusal::Unknown));
    let first = if token.as_bytes()[7] == b'f' {
        'e'
    } else {
        'f'
    };
    let other_id = format!("plinth_{first}{}", &token[8..]);
    assert_eq!(refused(Some(&bearer(&other_id))), Some(Refusal::Unknown));
    for bad in [
        String::new(),
        String::from("Bearer"),
        String::from("Bearer "),
        format!("Basic {token}"),
        format!("Bearer{token}"),
        format!("Bearer {}", token.to_uppercase()),
        format!("Bearer {}", &token[..TOKEN_LEN - 1]),
        format!("Bearer {token}0"),
        format!("Bearer {}", token.replacen('_', "-", 2)),
        format!("Bearer {token} {token}"),
        String::from("Bearer plinth_zz"),
    ] {
        assert_eq!(
            refused(Some(bad.as_bytes())),
            Some(Refusal::Malformed),
            "{bad:?}"
        );
    }
    assert_eq!(refused(Some(&[0xff, 0xfe, 0x00])), Some(Refusal::Malformed));
    assert_eq!(
        check(&[], Some(&bearer(&token)), None),
        Err(Refusal::Unknown)
    );
}

#[test]
fn an_expiring_token_holds_until_its_time_and_not_without_a_clock() {
    let (token, entry) = mint(random(4), "ci", Role::Operator, Some(1_000));
    let entries = [entry];
    let h = bearer(&token);
    assert!(check(&entries, Some(&h), Some(999)).is_ok());
    assert_eq!(
        check(&entries, Some(&h), Some(1_000)),
        Err(Refusal::Expired)
    );
    assert_eq!(check(&entries, Some(&h), None), Err(Refusal::Expired));
}

#[test]
fn random_headers_never_panic_and_never_pass() {
    let (token, entry) = mint(random(5), "ops", Role::Operator, None);
    let entries = [entry];
    let mut rng = plinth_testrng::Rng::new(11);
    for _ in 0..5_000 {
        let mut h = bearer(&token);
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(h.len());
            h[i] = rng.byte();
        }
        let r = check(&entries, Some(&h), None);
        if r.is_ok() {
            // Only a change the check ignores (the scheme's case, a space) may pass.
            let norm = String::from_utf8_lossy(&h).to_lowercase();
            assert!(norm.trim().ends_with(&token), "{norm}");
        }
    }
}
