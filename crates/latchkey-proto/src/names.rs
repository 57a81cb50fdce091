//! Enums that travel as their names: one declaration gives the variants, their wire names,
//! `ALL`, `as_str`, `FromStr` and `Display`.

use std::fmt;

/// A name that is not one of the type's variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

/// `FromStr` and `Display` for an enum with `ALL` and `as_str`.
#[macro_export]
#[doc(hidden)]
macro_rules! parse_by_name {
    ($ty:ident) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::UnknownName(s.to_string()))
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares an enum whose variants travel as the given names.
#[macro_export]
#[doc(hidden)]
macro_rules! names {
    (
        $(#[doc = $doc:literal])*
        $(#[derive($($extra:ident),*)])?
        pub enum $ty:ident { $($(#[doc = $vdoc:literal])* $variant:ident = $name:literal,)* }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize $($(, $extra)*)?
        )]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[derive(::ts_rs::TS)]
        pub enum $ty {
            $($(#[doc = $vdoc])* #[serde(rename = $name)] $variant,)*
        }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$(Self::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }

        $crate::parse_by_name!($ty);
    };
}
