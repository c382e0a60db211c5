//! A minimal connection pool: idle connections in a stack, new ones made on demand.
//! Both drivers here are blocking, so a mutex-guarded stack is all that is needed.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::Result;

type Make<T> = Box<dyn Fn() -> Result<T> + Send + Sync>;

pub(crate) struct Pool<T> {
    make: Make<T>,
    idle: Mutex<Vec<T>>,
    max_idle: usize,
    /// A connection for which this is true is not taken back (e.g. the server closed it).
    is_broken: fn(&T) -> bool,
}

impl<T> Pool<T> {
    pub(crate) fn new(max_idle: usize, make: Make<T>, is_broken: fn(&T) -> bool) -> Self {
        Pool {
            make,
            idle: Mutex::new(Vec::new()),
            max_idle,
            is_broken,
        }
    }

    /// Take every idle connection out of the pool (to close them somewhere safe).
    pub(crate) fn take_idle(&self) -> Vec<T> {
        std::mem::take(&mut *self.idle.lock().expect("pool lock"))
    }

    pub(crate) fn get(&self) -> Result<Pooled<'_, T>> {
        let conn = self.idle.lock().expect("pool lock").pop();
        let conn = match conn {
            Some(c) => c,
            None => (self.make)()?,
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

/// A connection on loan; it goes back to the pool when dropped.
pub(crate) struct Pooled<'a, T> {
    pool: &'a Pool<T>,
    conn: Option<T>,
}

impl<T> Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.conn.as_ref().expect("connection present")
    }
}

impl<T> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.conn.as_mut().expect("connection present")
    }
}

impl<T> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|c| !(self.pool.is_broken)(c)) {
            let mut idle = self.pool.idle.lock().expect("pool lock");
            if idle.len() < self.pool.max_idle {
                idle.push(conn);
            }
        }
    }
}
