//! A k-d tree for exact k-nearest-neighbour queries in any (moderate) dimension.
//!
//! Built by median splits on the dimension of largest spread (leaves of ≤ [`LEAF`] points, points
//! copied into tree order so a leaf is contiguous memory); queried depth-first, nearer child first,
//! with Arya–Mount incremental distance-to-cell bounds for pruning. Distances are Euclidean and
//! computed directly (no GEMM cancellation), so a zero distance means an exact duplicate.

use ndarray::ArrayView2;

/// Maximum points per leaf.
pub(crate) const LEAF: usize = 16;

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        start: usize,
        end: usize,
    },
    Split {
        dim: usize,
        value: f64,
        left: usize,
        right: usize,
    },
}

/// Exact k-NN index over the rows of a matrix.
#[derive(Debug, Clone)]
pub(crate) struct KdTree {
    d: usize,
    /// points in tree order, row-major `n × d`
    pts: Vec<f64>,
    /// original row index of each point in tree order
    idx: Vec<usize>,
    nodes: Vec<Node>,
}

/// Small sorted buffer of the `k` best (squared distance, index) pairs.
struct Best {
    k: usize,
    items: Vec<(f64, usize)>,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }
    #[inline]
    fn worst(&self) -> f64 {
        if self.items.len() < self.k {
            f64::INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }
    #[inline]
    fn push(&mut self, d2: f64, i: usize) {
        if d2 >= self.worst() {
            return;
        }
        let pos = self.items.partition_point(|(v, _)| *v <= d2);
        self.items.insert(pos, (d2, i));
        self.items.truncate(self.k);
    }
}

impl KdTree {
    /// Builds the tree over the rows of `x` (`n ≥ 1`).
    pub(crate) fn new(x: &ArrayView2<f64>) -> Self {
        let (n, d) = x.dim();
        let mut order: Vec<usize> = (0..n).collect();
        let mut nodes = Vec::with_capacity(2 * n / LEAF + 2);
        build(x, &mut order, 0, n, &mut nodes);
        let mut pts = Vec::with_capacity(n * d);
        for &i in &order {
            pts.extend(x.row(i).iter());
        }
        Self {
            d,
            pts,
            idx: order,
            nodes,
        }
    }

    /// Euclidean distance from `q` to its `k`-th nearest indexed point, ignoring the indexed point
    /// with original row `exclude` (pass `usize::MAX` to exclude nothing). `None` when fewer than
    /// `k` candidates exist.
    pub(crate) fn kth_distance(&self, q: &[f64], k: usize, exclude: usize) -> Option<f64> {
        let mut best = Best::new(k);
        let mut off = vec![0.0; self.d];
        self.search(0, q, &mut best, exclude, &mut off, 0.0);
        if best.items.len() < k {
            None
        } else {
            Some(best.items[k - 1].0.sqrt())
        }
    }

    fn search(
        &self,
        node: usize,
        q: &[f64],
        best: &mut Best,
        exclude: usize,
        off: &mut [f64],
        rd: f64,
    ) {
        match self.nodes[node] {
            Node::Leaf { start, end } => {
                let d = self.d;
                for p in start..end {
                    let row = &self.pts[p * d..(p + 1) * d];
                    let mut s = 0.0;
                    for (a, b) in row.iter().zip(q) {
                        let t = a - b;
                        s += t * t;
                    }
                    if s < best.worst() && self.idx[p] != exclude {
                        best.push(s, self.idx[p]);
                    }
                }
            }
            Node::Split {
                dim,
                value,
                left,
                right,
            } => {
                let diff = q[dim] - value;
                let (near, far) = if diff <= 0.0 {
                    (left, right)
                } else {
                    (right, left)
                };
                self.search(near, q, best, exclude, off, rd);
                let old = off[dim];
                let new_rd = rd - old * old + diff * diff;
                if new_rd < best.worst() {
                    off[dim] = diff;
                    self.search(far, q, best, exclude, off, new_rd);
                    off[dim] = old;
                }
            }
        }
    }
}

fn build(
    x: &ArrayView2<f64>,
    order: &mut [usize],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node>,
) -> usize {
    let id = nodes.len();
    if end - start <= LEAF {
        nodes.push(Node::Leaf { start, end });
        return id;
    }
    let d = x.ncols();
    let slice = &mut order[start..end];
    let mut best_dim = 0;
    let mut best_spread = -1.0;
    for j in 0..d {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &i in slice.iter() {
            let v = x[[i, j]];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi - lo > best_spread {
            best_spread = hi - lo;
            best_dim = j;
        }
    }
    if best_spread <= 0.0 {
        // all points identical: one leaf, however many
        nodes.push(Node::Leaf { start, end });
        return id;
    }
    let mid = slice.len() / 2;
    slice.select_nth_unstable_by(mid, |a, b| x[[*a, best_dim]].total_cmp(&x[[*b, best_dim]]));
    let value = x[[slice[mid], best_dim]];
    // left: [start, start+mid) all ≤ value; right: [start+mid, end) all ≥ value
    nodes.push(Node::Leaf { start: 0, end: 0 });
    let left = build(x, order, start, start + mid, nodes);
    let right = build(x, order, start + mid, end, nodes);
    nodes[id] = Node::Split {
        dim: best_dim,
        value,
        left,
        right,
    };
    id
}
