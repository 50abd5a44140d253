"""
``rcdepth show``: draw radar (large dots) and lidar (small dots) on a frame's image, coloured by depth.

Colours use one fixed colormap and range (``turbo``, 0 to ``--max-depth`` metres, a colour bar beside the image),
so pictures of different frames and sources compare directly. The dense ground truth is drawn below the image
where the source has one; 3D boxes (Astyx, nuScenes) are drawn as projected wireframes. A misprojection is obvious
here: radar dots off the cars, lidar rows tilted against the road, boxes floating beside the objects.
"""

import numpy as np

from rcdepth_ros.core.geometry.projection import project_points
from rcdepth_ros.data.boxes import BOX_EDGES
from rcdepth_ros.data.registry import open_reader, source_names
from rcdepth_ros.errors import DatasetError, OutputPathError
from rcdepth_ros.paths import check_output_file

HELP = 'draw radar and lidar on the image of a data set frame'
COLORMAP = 'turbo'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--source', required=True, choices=source_names(), help='data set')
    parser.add_argument('--root', default=None, help='data set folder (default: under $RCDEPTH_DATA)')
    parser.add_argument('--split', default=None, help='split the frame number counts in (source specific)')
    parser.add_argument('--frame', required=True,
                        help='frame: a number (Astyx frame index, else position in the split) or a frame id')
    parser.add_argument('--out', required=True, help='output picture file (.png when it has no suffix)')
    parser.add_argument('--max-depth', type=float, default=80.0, help='top of the colour range, metres')
    parser.add_argument('--no-boxes', action='store_true', help='do not draw 3D boxes')


def run(args):
    """Load one frame, draw it, write the PNG; return 0."""
    if not args.max_depth > 0:
        raise DatasetError(f'--max-depth must be positive, got {args.max_depth}')
    out = check_output_picture(args.out)
    reader = open_reader(args.source, args.root, split=args.split)
    frame = str(args.frame)
    if frame.isdigit() and args.source != 'astyx':
        frame_id = reader.frame_for_number(int(frame))
    else:
        frame_id = reader.resolve_frame_id(frame)
    sample = reader.sample(frame_id)
    summary = render_sample(sample, out, max_depth=args.max_depth, boxes=not args.no_boxes)
    print(f'{out}: {summary}')
    return 0


def check_output_picture(out):
    """Return the picture path ``out`` (``.png`` added without a suffix), checked before any frame is drawn."""
    # matplotlib is slow to import and only needed to draw: imported here
    from matplotlib.backend_bases import FigureCanvasBase
    path = check_output_file(out, '--out', default_suffix='.png')
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip('.') not in formats:
        raise OutputPathError(f'--out {out}: unknown picture format {path.suffix!r}; use one of '
                              f'{", ".join("." + f for f in sorted(formats))}')
    return path


def _project_for_drawing(points, K, width, height, pad=2.0):
    """Return pixel (u, v) and index of points in front of the camera, even outside the image (for lines)."""
    K_canvas = np.array(K, dtype=np.float64)
    K_canvas[0, 2] += pad * width
    K_canvas[1, 2] += pad * height
    hits = project_points(points, K_canvas, int((2 * pad + 1) * width), int((2 * pad + 1) * height),
                          min_depth=0.3)
    return hits.u - pad * width, hits.v - pad * height, hits.index


def render_sample(sample, out, max_depth=80.0, boxes=True):
    """Draw ``sample`` into the PNG file ``out``; return a one-line summary of what was drawn."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    K, width, height = sample.intrinsics.K, sample.width, sample.height
    radar_hits = project_points(sample.radar.xyz, K, width, height, min_depth=1.0)
    lidar_hits = None
    if sample.lidar_xyz is not None:
        lidar_hits = project_points(sample.lidar_xyz, K, width, height, min_depth=1e-3)
        lidar_u, lidar_v, lidar_z = lidar_hits.u, lidar_hits.v, lidar_hits.z
    else:
        lidar_v, lidar_u = np.nonzero(sample.depth_gt > 0)
        lidar_z = sample.depth_gt[lidar_v, lidar_u]
    panels = 2 if sample.depth_gt_dense is not None else 1
    fig_width = 16.0
    panel_height = (fig_width - 1.4) * height / width + 0.35          # the colour bar takes about 1.4 in
    fig, axes = plt.subplots(panels, 1, figsize=(fig_width, panel_height * panels + 0.2), squeeze=False,
                             layout='constrained')
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=max_depth)
    cmap = plt.get_cmap(COLORMAP)

    ax = axes[0, 0]
    ax.imshow(sample.image)
    ax.scatter(lidar_u, lidar_v, c=lidar_z, cmap=cmap, norm=norm, s=1.5, linewidths=0)
    mappable = ax.scatter(radar_hits.u, radar_hits.v, c=radar_hits.z, cmap=cmap, norm=norm, s=38,
                          edgecolors='black', linewidths=0.6)
    drawn_boxes = 0
    if boxes and sample.boxes:
        for box in sample.boxes:
            corners = box.corners()
            u, v, index = _project_for_drawing(corners, K, width, height)
            if len(index) < 8:
                continue                      # a corner behind the camera: the wireframe would be wrong
            if u.max() < 0 or u.min() >= width or v.max() < 0 or v.min() >= height:
                continue
            colour = cmap(norm(float(box.center[2])))
            for a, b in BOX_EDGES:
                ax.plot([u[a], u[b]], [v[a], v[b]], color=colour, linewidth=1.2)
            ax.text(u.min(), v.min() - 4, box.label, color='white', fontsize=7,
                    bbox={'facecolor': 'black', 'alpha': 0.5, 'pad': 1, 'linewidth': 0})
            drawn_boxes += 1
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    title = (f'{sample.source} frame {sample.frame_id}: radar {len(radar_hits)}/{len(sample.radar)} in image '
             f'(large dots), lidar {len(lidar_z)} (small dots)')
    if drawn_boxes:
        title += f', {drawn_boxes} boxes'
    ax.set_title(title, fontsize=10)
    ax.legend(handles=[Line2D([], [], marker='o', linestyle='', markersize=7, markerfacecolor='grey',
                              markeredgecolor='black', label='radar'),
                       Line2D([], [], marker='o', linestyle='', markersize=2, color='grey', label='lidar')],
              loc='lower left', fontsize=8, framealpha=0.6)

    if panels == 2:
        ax = axes[1, 0]
        dense = np.ma.masked_less_equal(sample.depth_gt_dense, 0.0)
        ax.set_facecolor('black')
        ax.imshow(dense, cmap=cmap, norm=norm, interpolation='nearest')
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        coverage = float((sample.depth_gt_dense > 0).mean())
        ax.set_title(f'dense ground truth ({100 * coverage:.0f} % of pixels; black = none)', fontsize=10)
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.03, pad=0.005, aspect=30)
    bar.set_label('depth [m]')
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return (f'radar {len(radar_hits)} of {len(sample.radar)} returns in the image, lidar {len(lidar_z)} points, '
            f'{drawn_boxes} boxes, dense GT {"yes" if panels == 2 else "no"}')
