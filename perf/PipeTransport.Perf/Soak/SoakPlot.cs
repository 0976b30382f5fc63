using ScottPlot;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// The soak's picture: four panels over time (RSS, fds, threads, managed heap) of the server process,
/// the fd-limit periods shaded, the checkpoints marked, the fd limit drawn.
/// </summary>
internal static class SoakPlot
{
    private const double Mib = 1 << 20;

    public static void Draw(string path, IReadOnlyList<ProcessSample> samples, IReadOnlyList<SoakCheckpoint> checkpoints,
        IReadOnlyList<FdLimitOutcome> periods, int fdLimit)
    {
        double[] t = samples.Select(s => s.Seconds).ToArray();
        double[] tc = checkpoints.Select(c => c.Seconds).ToArray();
        var multiplot = new Multiplot();
        multiplot.AddPlots(4);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Rows();

        var rss = multiplot.GetPlot(0);
        Line(rss, t, samples.Select(s => s.Rss / Mib), "RSS", Colors.Blue);
        Marks(rss, tc, checkpoints.Select(c => c.Rss / Mib), "checkpoint (median of 5 s)");
        rss.YLabel("RSS (MiB)");
        rss.Title("Soak: Kestrel UsePipeTransport() + FIFO bridge, server process (shaded: at the fd limit)");

        var fds = multiplot.GetPlot(1);
        Line(fds, t, samples.Select(s => (double)s.Fds), "open fds", Colors.DarkGreen);
        Marks(fds, tc, checkpoints.Select(c => (double)c.UnownedFds), "checkpoint: fds not held by a connection");
        var limit = fds.Add.HorizontalLine(fdLimit);
        limit.LineColor = Colors.Red;
        limit.LinePattern = LinePattern.Dashed;
        limit.LegendText = $"fd limit ({fdLimit})";
        fds.YLabel("fds");

        var threads = multiplot.GetPlot(2);
        Line(threads, t, samples.Select(s => (double)s.Threads), "threads", Colors.Purple);
        Marks(threads, tc, checkpoints.Select(c => (double)c.Threads), "checkpoint (median of 5 s)");
        threads.YLabel("threads");

        var heap = multiplot.GetPlot(3);
        Line(heap, t, samples.Select(s => s.GcHeap / Mib), "GC heap (GC.GetTotalMemory)", Colors.Orange);
        Marks(heap, tc, checkpoints.Select(c => c.LiveHeap / Mib), "checkpoint: after a full GC");
        heap.YLabel("managed heap (MiB)");
        heap.XLabel("seconds");

        var plots = multiplot.GetPlots();
        for (int i = 0; i < plots.Length; i++)
        {
            // The same left and right padding in every panel, so their time axes line up.
            var plot = plots[i];
            plot.Layout.Fixed(new PixelPadding(90, 30, i == plots.Length - 1 ? 50 : 25, i == 0 ? 40 : 15));
            foreach (var period in periods)
            {
                var span = plot.Add.HorizontalSpan(period.Start, period.End);
                span.FillStyle.Color = Colors.Red.WithAlpha(0.12);
                span.LineStyle.Width = 0;
            }

            // Room above the data for the legend.
            plot.Axes.Margins(horizontal: 0.01, vertical: 0.1);
            plot.Axes.Margins(top: 0.45);
            plot.ShowLegend(Alignment.UpperLeft, Orientation.Horizontal);
        }

        multiplot.SavePng(path, 1400, 1500);
    }

    private static void Line(Plot plot, double[] x, IEnumerable<double> y, string label, Color color)
    {
        var line = plot.Add.ScatterLine(x, y.ToArray());
        line.Color = color;
        line.LineWidth = 1.5f;
        line.LegendText = label;
    }

    private static void Marks(Plot plot, double[] x, IEnumerable<double> y, string label)
    {
        var marks = plot.Add.ScatterPoints(x, y.ToArray());
        marks.Color = Colors.Black;
        marks.MarkerSize = 7;
        marks.MarkerShape = MarkerShape.FilledDiamond;
        marks.LegendText = label;
    }
}
