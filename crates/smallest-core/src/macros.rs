//! The one macro of the crate: string-valued enums with an escape hatch.
//!
//! Models, languages and formats are closed sets today and open sets tomorrow. Each is
//! an enum whose known values the compiler checks, plus an `Other(String)` variant so
//! that a value the server adds later never breaks a user (nor this SDK's parsing).

/// Declares `pub enum $name { $variant, …, Other(String) }` with `as_str`, `Display`,
/// `FromStr` (exact wire spelling; unknown values become `Other`), serde as a string,
/// and `ALL`, the known values in wire order.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of the SDK does not know; sent and received verbatim.
            Other(String),
        }

        impl $name {
            /// Every value this version of the SDK knows, in the order the API documents them.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The value as it is written on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// Parses the wire spelling; anything unknown becomes `Other`.
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }

            /// `true` unless this is the `Other` escape hatch.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }

            /// The known wire values joined with `", "`, for error messages.
            #[allow(dead_code)]
            pub(crate) fn allowed() -> String {
                [$( $wire ),+].join(", ")
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = ::core::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name::from_wire(s))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Ok($name::from_wire(&s))
            }
        }
    };
}

pub(crate) use string_enum;
