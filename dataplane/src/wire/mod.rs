//! Wire views: headers as views over bytes (placeholder, replaced by the wire views).
