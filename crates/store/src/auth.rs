//! Users, roles, password hashes (argon2) and credentials (bearer tokens and
//! session cookies, stored only as SHA-256 hashes).

use crate::db::Val;
use crate::{AuditRow, Scope, Store, StoreError, now_string};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    SystemAdmin,
    HealthCommission,
    OperationsCentre,
    Clinician,
    Pharmacist,
    VillageDoctor,
    InsuranceOfficer,
}

pub const ALL_ROLES: [Role; 7] = [
    Role::SystemAdmin,
    Role::HealthCommission,
    Role::OperationsCentre,
    Role::Clinician,
    Role::Pharmacist,
    Role::VillageDoctor,
    Role::InsuranceOfficer,
];

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::SystemAdmin => "admin",
            Role::HealthCommission => "health-commission",
            Role::OperationsCentre => "operations-centre",
            Role::Clinician => "clinician",
            Role::Pharmacist => "pharmacist",
            Role::VillageDoctor => "village-doctor",
            Role::InsuranceOfficer => "insurance-officer",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::SystemAdmin => "系统管理员",
            Role::HealthCommission => "县卫健局",
            Role::OperationsCentre => "运营管理中心",
            Role::Clinician => "临床医生",
            Role::Pharmacist => "药师",
            Role::VillageDoctor => "乡村医生",
            Role::InsuranceOfficer => "医保专员",
        }
    }
    pub fn from_code(s: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.code() == s)
    }
    /// Roles that may change records (as opposed to only reading them).
    pub fn may_write_clinical(self) -> bool {
        matches!(
            self,
            Role::SystemAdmin | Role::Clinician | Role::VillageDoctor | Role::Pharmacist
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub display: String,
    pub role: Role,
    pub scope: Scope,
    pub institution: Option<String>,
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Creates or replaces a user (with an audit row).
    pub fn upsert_user(&self, actor: &str, user: &User, password: &str) -> Result<(), StoreError> {
        if password.chars().count() < 8 {
            return Err(StoreError::Conflict("密码至少8位".into()));
        }
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| StoreError::Database(e.to_string()))?
            .to_string();
        let now = now_string();
        self.db().write(|tx| {
            tx.exec(
                "INSERT INTO users (name, display, password_hash, role, scope_kind, scope_id, institution, active) VALUES (?, ?, ?, ?, ?, ?, ?, 1)
                 ON CONFLICT (name) DO UPDATE SET display = excluded.display, password_hash = excluded.password_hash, role = excluded.role,
                 scope_kind = excluded.scope_kind, scope_id = excluded.scope_id, institution = excluded.institution, active = 1",
                &[
                    user.name.as_str().into(), user.display.as_str().into(), hash.into(), user.role.code().into(),
                    user.scope.kind().into(), user.scope.id().into(), user.institution.clone().into(),
                ],
            )?;
            let role = format!("角色 {}", user.role.label_zh());
            AuditRow::by_user(actor, &now, "user-upsert")
                .on("User", &user.name)
                .reason(Some(&role))
                .append(tx)?;
            Ok(())
        })?;
        self.credential_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (u, _)| u.name != user.name);
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.db().read(|c| {
            let row = c.query_one(
                "SELECT name, display, role, scope_kind, scope_id, institution FROM users WHERE name = ? AND active = 1",
                &[name.into()],
            )?;
            Ok(row.and_then(user_from_row))
        })
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.db().read(|c| {
            let rows = c.query("SELECT name, display, role, scope_kind, scope_id, institution FROM users WHERE active = 1 ORDER BY name", &[])?;
            Ok(rows.into_iter().filter_map(user_from_row).collect())
        })
    }

    /// Checks a password; `None` for an unknown user or a wrong password.
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>, StoreError> {
        let hash = self.db().read(|c| {
            Ok(c.query_one(
                "SELECT password_hash FROM users WHERE name = ? AND active = 1",
                &[name.into()],
            )?
            .and_then(|r| r.into_iter().next())
            .and_then(Val::into_string))
        })?;
        let Some(hash) = hash else { return Ok(None) };
        let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Database(e.to_string()))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Ok(None);
        }
        self.user(name)
    }

    /// Issues a bearer token or session secret for `user`, valid for `ttl`.
    pub fn issue_credential(
        &self,
        user: &str,
        kind: &str,
        ttl: chrono::Duration,
    ) -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = chrono::Utc::now();
        let expires = (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.db().write(|tx| {
            tx.exec(
                "INSERT INTO credentials (hash, user_name, kind, created, expires) VALUES (?, ?, ?, ?, ?)",
                &[hash_token(&token).into(), user.into(), kind.into(), now_string().into(), expires.into()],
            )?;
            let (now, action) = (now_string(), format!("issue-{kind}"));
            AuditRow::by_user(user, &now, &action)
                .on("User", user)
                .append(tx)?;
            Ok(())
        })?;
        Ok(token)
    }

    /// The cached user of a credential already verified, without touching the
    /// database (the hot path of every API request).
    pub fn cached_user(&self, token: &str) -> Option<User> {
        let cache = self
            .credential_cache
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let (u, exp) = cache.get(&hash_token(token))?;
        (exp.as_str() > now_string().as_str()).then(|| u.clone())
    }

    /// The user a token or session secret belongs to, if it is valid now.
    pub fn user_for_credential(&self, token: &str) -> Result<Option<User>, StoreError> {
        let hash = hash_token(token);
        let now = now_string();
        if let Some((u, exp)) = self
            .credential_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            return Ok((exp.as_str() > now.as_str()).then(|| u.clone()));
        }
        let row = self.db().read(|c| {
            c.query_one(
                "SELECT u.name, u.display, u.role, u.scope_kind, u.scope_id, u.institution, c.expires FROM credentials c JOIN users u ON u.name = c.user_name WHERE c.hash = ? AND u.active = 1",
                &[hash.as_str().into()],
            )
        })?;
        let Some(mut row) = row else { return Ok(None) };
        let expires = row.pop().and_then(Val::into_string).unwrap_or_default();
        let Some(user) = user_from_row(row) else {
            return Ok(None);
        };
        if expires.as_str() <= now.as_str() {
            return Ok(None);
        }
        self.credential_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, (user.clone(), expires));
        Ok(Some(user))
    }

    pub fn revoke_credential(&self, token: &str) -> Result<(), StoreError> {
        let hash = hash_token(token);
        self.credential_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash);
        self.db().write(|tx| {
            tx.exec(
                "DELETE FROM credentials WHERE hash = ?",
                &[hash.as_str().into()],
            )?;
            Ok(())
        })
    }
}

fn user_from_row(r: Vec<Val>) -> Option<User> {
    let mut it = r.into_iter();
    let name = it.next()?.into_string()?;
    let display = it.next()?.into_string()?;
    let role = Role::from_code(&it.next()?.into_string()?)?;
    let kind = it.next()?.into_string()?;
    let scope = Scope::from_parts(&kind, it.next()?.into_string())?;
    let institution = it.next().and_then(Val::into_string);
    Some(User {
        name,
        display,
        role,
        scope,
        institution,
    })
}
