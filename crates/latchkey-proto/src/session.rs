//! Where sessions and the refresh tokens of their families stand.

crate::names! {
    /// Where a session stands: `active` until it is revoked or its family expires (idle or at
    /// its absolute lifetime).
    pub enum SessionState {
        Active = "active",
        Revoked = "revoked",
        Expired = "expired",
    }
}

crate::names! {
    /// Where one refresh token of a family stands: `active` while it is the head of a live
    /// session, `revoked` as the head of a revoked one, otherwise `rotated` (retired by use).
    pub enum LinkState {
        Active = "active",
        Rotated = "rotated",
        Revoked = "revoked",
    }
}
