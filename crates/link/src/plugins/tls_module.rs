//! The unit's TLS module (see `tls`): loaded by the TLS phase, before apply, because apply
//! needs the loader's values; this plugin owns it from then on and unloads it when the unit is
//! freed, last, after everything that may still run the unit's code.

use super::Plugin;
use crate::error::LinkError;
use rjitlink_target::{Executor, ModuleHandle};

/// Unloads the unit's TLS module when the unit is freed.
pub struct TlsModule {
    module: Option<ModuleHandle>,
}

impl TlsModule {
    pub fn new(module: ModuleHandle) -> TlsModule {
        TlsModule {
            module: Some(module),
        }
    }
}

impl Plugin for TlsModule {
    fn free(&mut self, target: &mut dyn Executor) -> Result<(), LinkError> {
        match self.module.take() {
            Some(module) => target.unload_module(module).map_err(LinkError::target(
                "cannot unload the unit's thread-local storage",
            )),
            None => Ok(()),
        }
    }
}
