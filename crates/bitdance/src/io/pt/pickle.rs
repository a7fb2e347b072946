//! A restricted unpickler for `torch.save` checkpoints: it builds plain values and never runs
//! anything. Only the globals torch.save uses to describe tensors and containers are accepted
//! (tensor rebuilding, storages, dtypes, OrderedDict) plus a few inert record types official
//! checkpoints carry (argparse.Namespace, numpy scalars), which stay opaque; any other global
//! (os.system, builtins.eval, ...) is refused with an error naming it.

use crate::{Error, Result};

/// A value of the pickle, after the restricted interpretation.
#[derive(Clone, Debug)]
#[allow(dead_code)] // scalar payloads are kept for error messages (Debug)
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An allowed global (module.name), not yet applied.
    Global(String),
    /// A storage reference: dtype name (e.g. "FloatStorage") and archive key.
    Storage {
        kind: String,
        key: String,
    },
    /// A tensor view of a storage.
    Tensor(TensorRef),
    /// An inert object of an allowed record type (e.g. argparse.Namespace), never inspected.
    Opaque(String),
    Mark,
}

/// A tensor as torch describes it: a view (offset, shape, strides, in elements) of a storage.
#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub kind: String,
    pub key: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// Globals that build tensors and containers.
const TENSOR_GLOBALS: &[&str] = &[
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "collections.OrderedDict",
];
/// Inert record types that may appear outside the weights; kept opaque, never constructed.
const INERT_GLOBALS: &[&str] = &[
    "argparse.Namespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "torch.torch_version.TorchVersion",
];

fn allowed(global: &str) -> bool {
    TENSOR_GLOBALS.contains(&global)
        || INERT_GLOBALS.contains(&global)
        || (global.starts_with("torch.") && global.ends_with("Storage"))
        || matches!(
            global,
            "torch.float32" | "torch.float16" | "torch.bfloat16" | "torch.float64"
        )
}

struct Reader<'a> {
    label: &'a str,
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: String) -> Error {
        Error::Invalid(format!(
            "{}: data.pkl at byte {}: {what}",
            self.label, self.at
        ))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .data
            .get(self.at..self.at + n)
            .ok_or_else(|| self.err("unexpected end of the pickle (truncated?)".into()))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.at.min(self.data.len())..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("unterminated text line".into()))?;
        let s = String::from_utf8_lossy(&rest[..end]).to_string();
        self.at += end + 1;
        Ok(s)
    }
    fn text(&mut self, n: usize) -> Result<String> {
        Ok(String::from_utf8_lossy(self.take(n)?).to_string())
    }
}

/// The unpickler's stack. Each slot also remembers the memo keys its value was stored under,
/// so a container filled after being memoized (pickle memoizes a dict or list as soon as it is
/// created, before its items) is refreshed in the memo: a later memo get sees it filled.
#[derive(Default)]
struct Stack {
    values: Vec<Value>,
    keys: Vec<Vec<u64>>,
    /// How deep and how large each value is.
    extents: Vec<Extent>,
    /// Nodes copied to and from the memo so far.
    copied: usize,
}

/// Nesting depth (0 for scalars, 1 + the deepest item for containers) and node count of a value.
#[derive(Clone, Copy, Default)]
struct Extent {
    depth: usize,
    nodes: usize,
}

impl Extent {
    /// The extent of a container holding items whose extents add up to `items`.
    fn holding(self, items: Extent) -> Extent {
        Extent {
            depth: self.depth.max(items.depth + 1),
            nodes: self.nodes + items.nodes,
        }
    }
    /// Several items together: the deepest depth, the summed nodes.
    fn and(self, other: Extent) -> Extent {
        Extent {
            depth: self.depth.max(other.depth),
            nodes: self.nodes + other.nodes,
        }
    }
}

/// Deepest container nesting accepted. State dicts nest a few levels; the limit keeps the
/// recursive clone, drop and formatting of values far from the thread's stack size.
const MAX_DEPTH: usize = 100;
/// Most nodes in one value: memo references are copied, so a small hostile pickle could
/// otherwise grow exponentially (a state dict has a few nodes per tensor).
const MAX_NODES: usize = 1 << 20;
/// Most nodes copied between the stack and the memo in one load (each mutation of a memoized
/// container refreshes its copy): bounds the time a hostile pickle can take.
const MAX_COPIED: usize = 1 << 24;

/// Memoized values with their extents.
type Memo = std::collections::HashMap<u64, (Value, Extent)>;

impl Stack {
    fn push(&mut self, v: Value) {
        let container = matches!(v, Value::List(_) | Value::Tuple(_) | Value::Dict(_));
        let extent = Extent {
            depth: usize::from(container),
            nodes: 1,
        };
        self.push_with(v, extent, Vec::new());
    }
    fn push_with(&mut self, v: Value, extent: Extent, keys: Vec<u64>) {
        self.values.push(v);
        self.extents.push(extent);
        self.keys.push(keys);
    }
    /// Pushes a new container holding items of extent `items`.
    fn push_container(&mut self, r: &Reader, v: Value, items: Extent) -> Result<()> {
        let extent = check(r, Extent { depth: 1, nodes: 1 }.holding(items))?;
        self.push_with(v, extent, Vec::new());
        Ok(())
    }
    fn pop(&mut self) -> Option<(Value, Extent)> {
        self.keys.pop();
        Some((self.values.pop()?, self.extents.pop()?))
    }
    fn len(&self) -> usize {
        self.values.len()
    }
    fn last(&self) -> Option<&Value> {
        self.values.last()
    }
    /// The top value, to add items of extent `items` to it.
    fn last_mut(&mut self, r: &Reader, items: Extent) -> Result<Option<&mut Value>> {
        if let Some(e) = self.extents.last_mut() {
            *e = check(r, e.holding(items))?;
        }
        Ok(self.values.last_mut())
    }
    /// Removes and returns the values from index `at` on, with their combined extent.
    fn split_off(&mut self, at: usize) -> (Vec<Value>, Extent) {
        self.keys.truncate(at);
        let extent = self
            .extents
            .split_off(at)
            .into_iter()
            .fold(Extent::default(), Extent::and);
        (self.values.split_off(at), extent)
    }
    /// Counts `nodes` more copied nodes against `MAX_COPIED`.
    fn copying(&mut self, r: &Reader, nodes: usize) -> Result<()> {
        self.copied += nodes;
        if self.copied > MAX_COPIED {
            return Err(r.err(format!(
                "more than {MAX_COPIED} values copied through the memo; not a checkpoint"
            )));
        }
        Ok(())
    }
    /// Stores the top value under memo key `k` (and remembers that it did).
    fn memoize(&mut self, r: &Reader, memo: &mut Memo, k: u64) -> Result<()> {
        let extent = self.extents.last().copied().unwrap_or_default();
        self.copying(r, extent.nodes)?;
        let top = self.last().cloned().unwrap_or(Value::None);
        memo.insert(k, (top, extent));
        if let Some(keys) = self.keys.last_mut() {
            keys.push(k);
        }
        Ok(())
    }
    /// Copies the (just mutated) top value to every memo key it was stored under.
    fn refresh(&mut self, r: &Reader, memo: &mut Memo) -> Result<()> {
        let (Some(n), Some(e)) = (self.keys.last().map(Vec::len), self.extents.last().copied())
        else {
            return Ok(());
        };
        self.copying(r, e.nodes * n)?;
        if let (Some(v), Some(keys)) = (self.values.last(), self.keys.last()) {
            for k in keys {
                memo.insert(*k, (v.clone(), e));
            }
        }
        Ok(())
    }
}

/// `extent`, or an error when it passes the depth or size limit.
fn check(r: &Reader, extent: Extent) -> Result<Extent> {
    if extent.depth > MAX_DEPTH {
        return Err(r.err(format!(
            "containers nested deeper than {MAX_DEPTH} levels; not a checkpoint"
        )));
    }
    if extent.nodes > MAX_NODES {
        return Err(r.err(format!(
            "a value of more than {MAX_NODES} items (memo references copied over and over); \
             not a checkpoint"
        )));
    }
    Ok(extent)
}

/// Interprets the pickle `data` (`label` names the file in errors); returns the root value.
pub(super) fn load(label: &str, data: &[u8]) -> Result<Value> {
    let mut r = Reader { label, data, at: 0 };
    let mut stack = Stack::default();
    let mut memo = Memo::default();
    let pop_deep = |stack: &mut Stack, r: &Reader| -> Result<(Value, Extent)> {
        stack.pop().ok_or_else(|| r.err("stack underflow".into()))
    };
    let pop = |stack: &mut Stack, r: &Reader| -> Result<Value> { Ok(pop_deep(stack, r)?.0) };
    // The items above the topmost mark, and their combined extent.
    let pop_mark = |stack: &mut Stack, r: &Reader| -> Result<(Vec<Value>, Extent)> {
        let at = stack
            .values
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| r.err("no mark on the stack".into()))?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.u64()?; // FRAME
            }
            b'.' => return pop(&mut stack, &r),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let bytes = r.take(n)?;
                if n > 8 {
                    return Err(r.err(format!("integer of {n} bytes is too large")));
                }
                let mut buf = [0u8; 8];
                buf[..n].copy_from_slice(bytes);
                if n > 0 && bytes[n - 1] & 0x80 != 0 {
                    buf[n..].fill(0xff);
                }
                stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(
                r.take(8)?.try_into().unwrap_or_default(),
            ))),
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            0x8d => {
                let n = r.u64()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let (items, depth) = pop_mark(&mut stack, &r)?;
                stack.push_container(&r, Value::Tuple(items), depth)?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(r.err("stack underflow".into()));
                }
                let (items, depth) = stack.split_off(stack.len() - n);
                stack.push_container(&r, Value::Tuple(items), depth)?;
            }
            b'l' => {
                let (items, depth) = pop_mark(&mut stack, &r)?;
                stack.push_container(&r, Value::List(items), depth)?;
            }
            b'd' => {
                let (items, depth) = pop_mark(&mut stack, &r)?;
                let pairs = items
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or(Value::None)))
                    .collect();
                stack.push_container(&r, Value::Dict(pairs), depth)?;
            }
            b'a' => {
                let (v, depth) = pop_deep(&mut stack, &r)?;
                match stack.last_mut(&r, depth)? {
                    Some(Value::List(l)) => l.push(v),
                    _ => return Err(r.err("APPEND to a non-list".into())),
                }
                stack.refresh(&r, &mut memo)?;
            }
            b'e' => {
                let (items, depth) = pop_mark(&mut stack, &r)?;
                match stack.last_mut(&r, depth)? {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err(r.err("APPENDS to a non-list".into())),
                }
                stack.refresh(&r, &mut memo)?;
            }
            b's' => {
                let (v, dv) = pop_deep(&mut stack, &r)?;
                let (k, dk) = pop_deep(&mut stack, &r)?;
                match stack.last_mut(&r, dv.and(dk))? {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    Some(Value::Opaque(_)) => {}
                    _ => return Err(r.err("SETITEM on a non-dict".into())),
                }
                stack.refresh(&r, &mut memo)?;
            }
            b'u' => {
                let (items, depth) = pop_mark(&mut stack, &r)?;
                match stack.last_mut(&r, depth)? {
                    Some(Value::Dict(d)) => d.extend(
                        items
                            .chunks(2)
                            .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or(Value::None))),
                    ),
                    Some(Value::Opaque(_)) => {}
                    _ => return Err(r.err("SETITEMS on a non-dict".into())),
                }
                stack.refresh(&r, &mut memo)?;
            }
            b'q' => {
                let k = r.u8()? as u64;
                stack.memoize(&r, &mut memo, k)?;
            }
            b'r' => {
                let k = r.u32()? as u64;
                stack.memoize(&r, &mut memo, k)?;
            }
            0x94 => {
                let k = memo.len() as u64;
                stack.memoize(&r, &mut memo, k)?;
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    r.u8()? as u64
                } else {
                    r.u32()? as u64
                };
                let (v, extent) = memo
                    .get(&k)
                    .ok_or_else(|| r.err(format!("memo key {k} missing")))?;
                let (v, extent) = (v.clone(), *extent);
                stack.copying(&r, extent.nodes)?;
                stack.push_with(v, extent, vec![k]);
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(global(&r, format!("{module}.{name}"))?);
            }
            0x93 => {
                let name = pop(&mut stack, &r)?;
                let module = pop(&mut stack, &r)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(global(&r, format!("{m}.{n}"))?),
                    _ => return Err(r.err("STACK_GLOBAL needs two strings".into())),
                }
            }
            b'Q' => {
                let pid = pop(&mut stack, &r)?;
                stack.push(persistent(&r, pid)?);
            }
            b'R' => {
                let args = pop(&mut stack, &r)?;
                let func = pop(&mut stack, &r)?;
                stack.push(reduce(&r, func, args)?);
            }
            0x81 => {
                let args = pop(&mut stack, &r)?;
                let cls = pop(&mut stack, &r)?;
                stack.push(reduce(&r, cls, args)?);
            }
            b'b' => {
                // BUILD: set state on the object below; tensors and inert records ignore it.
                let _state = pop(&mut stack, &r)?;
                if !matches!(
                    stack.last(),
                    Some(Value::Tensor(_) | Value::Opaque(_) | Value::Dict(_))
                ) {
                    return Err(r.err("BUILD on an unexpected object".into()));
                }
            }
            other => {
                return Err(r.err(format!(
                    "pickle opcode 0x{other:02x} is not accepted by the restricted reader"
                )))
            }
        }
    }
}

fn global(r: &Reader, name: String) -> Result<Value> {
    if !allowed(&name) {
        return Err(Error::Invalid(format!(
            "{}: refused: the checkpoint references '{name}', which is not a tensor, a \
             storage or a plain container (nothing in it was executed)",
            r.label
        )));
    }
    Ok(Value::Global(name))
}

fn persistent(r: &Reader, pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else {
        return Err(r.err("persistent id is not a tuple".into()));
    };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(kind), Value::Str(key), _, _] if tag == "storage" => {
            Ok(Value::Storage {
                kind: kind.rsplit('.').next().unwrap_or_default().to_string(),
                key: key.clone(),
            })
        }
        _ => Err(r.err(format!("unexpected persistent id {items:?}"))),
    }
}

fn ints(r: &Reader, v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) => usize::try_from(*n)
                    .map_err(|_| r.err(format!("{what} holds the negative value {n}"))),
                other => Err(r.err(format!("{what} holds {other:?}, not an integer"))),
            })
            .collect(),
        _ => Err(r.err(format!("{what} is not a tuple"))),
    }
}

fn reduce(r: &Reader, func: Value, args: Value) -> Result<Value> {
    let name = match func {
        Value::Global(name) => name,
        Value::Opaque(name) => return Ok(Value::Opaque(name)),
        other => return Err(r.err(format!("call of a non-global {other:?}"))),
    };
    let Value::Tuple(args) = args else {
        return Err(r.err(format!("arguments of {name} are not a tuple")));
    };
    match name.as_str() {
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            let (
                Some(Value::Storage { kind, key }),
                Some(Value::Int(offset)),
                Some(size),
                Some(stride),
            ) = (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return Err(r.err(format!("unexpected arguments of {name}")));
            };
            Ok(Value::Tensor(TensorRef {
                kind: kind.clone(),
                key: key.clone(),
                offset: usize::try_from(*offset)
                    .map_err(|_| r.err(format!("tensor storage offset {offset} is negative")))?,
                shape: ints(r, size, "tensor size")?,
                strides: ints(r, stride, "tensor stride")?,
            }))
        }
        "torch._utils._rebuild_parameter" => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(r.err("parameter without a tensor".into())),
        },
        "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
        other => Ok(Value::Opaque(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::{load, Value, MAX_DEPTH};

    #[test]
    fn a_deep_list_at_the_limit_loads() {
        assert!(matches!(
            load("ok.pt", &nested(MAX_DEPTH)),
            Ok(Value::List(_))
        ));
    }

    /// Protocol-2 pickle of lists nested `depth` deep (EMPTY_LIST x depth, APPEND x depth-1).
    fn nested(depth: usize) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', depth));
        p.extend(std::iter::repeat_n(b'a', depth - 1));
        p.push(b'.');
        p
    }

    #[test]
    fn deep_or_explosive_pickles_are_refused_before_they_hurt() {
        for depth in [MAX_DEPTH + 1, 1_000_000] {
            let err = load("deep.pt", &nested(depth)).err().unwrap().to_string();
            assert!(
                err.contains("deep.pt") && err.contains("nested deeper"),
                "{err}"
            );
        }
        // A list appended to itself through the memo doubles each time (BINPUT 0, BINGET 0,
        // APPEND): refused (by size or by copies) long before memory runs out.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..MAX_DEPTH {
            p.extend([b'h', 0, b'a', b'q', 0]);
        }
        p.push(b'.');
        let err = load("memo.pt", &p).err().unwrap().to_string();
        assert!(err.contains("memo.pt") && err.contains("memo"), "{err}");
        // A memoized list filled one APPEND at a time is copied whole each time: bounded.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..200_000 {
            p.extend([b'N', b'a']);
        }
        p.push(b'.');
        let err = load("slow.pt", &p).err().unwrap().to_string();
        assert!(err.contains("copied through the memo"), "{err}");
    }
}
