//! `settings!`: a section of the file declared once, each key on one line with its doc, its
//! default and its reader, so that a new key is that line and its README row.

/// ```text
/// settings! {
///     /// `[limits]`: …
///     #[derive(Debug, Clone, PartialEq, Eq)]
///     pub struct Limits {
///         /// Recipients per message.
///         // Why the default is what it is.
///         max_recipients: usize = 500 => "values::count", const DEFAULT_MAX_RECIPIENTS;
///     }
/// }
/// ```
///
/// makes the struct with every field `pub`, read with `serde(default, deny_unknown_fields)`,
/// each key through its reader in `values` (or its type's own `Deserialize` without `=>`); its
/// `Default` from the values given; and a `pub const` for a default that code elsewhere needs.
///
/// A second struct after `with` holds keys that need nothing but their reader: they are read
/// as keys of the first (the same table), and `settings()` hands them over as one value.
macro_rules! settings {
    (
        $(#[$meta:meta])* $vis:vis struct $name:ident { $($fields:tt)* }
        $(#[$with_meta:meta])* with $with_vis:vis struct $with:ident { $($with_fields:tt)* }
    ) => {
        settings!(@read [$(#[$meta])*] [$vis] $name $($fields)* $($with_fields)*);
        settings!(@plain [$(#[$with_meta])*] [$with_vis] $with for $name $($with_fields)*);
    };
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($fields:tt)* }) => {
        settings!(@read [$(#[$meta])*] [$vis] $name $($fields)*);
    };
    (@read [$(#[$meta:meta])*] [$vis:vis] $name:ident $(
        $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr
        $(=> $reader:literal)? $(, const $const:ident)?;
    )*) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $($(#[$doc])* $(#[serde(deserialize_with = $reader)])? pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
        $($(pub const $const: $ty = $default;)?)*
    };
    (@plain [$(#[$meta:meta])*] [$vis:vis] $name:ident for $file:ident $(
        $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr
        $(=> $reader:literal)? $(, const $const:ident)?;
    )*) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$doc])* pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
        impl $file {
            /// The keys that need nothing but their reader, as read.
            pub fn settings(&self) -> $name {
                $name { $($field: self.$field.clone(),)* }
            }
        }
    };
}
