using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>How the scenarios set up the subject, in one place.</summary>
internal static class FdConnections
{
    /// <summary>The library's defaults, with the run's buffer size as the pool block size.</summary>
    public static FdConnectionOptions Options(RunContext context) => new() { BufferSize = context.Settings.BufferSize };

    /// <summary>A connection whose Input reads the FIFO at <paramref name="path"/>.</summary>
    public static async Task<FdConnection> OpenFifoReaderAsync(string path, RunContext context)
    {
        // OpenFifoAsync documents a null write path for a one-way connection but (3dcd0f3) rejects it,
        // so adopt a read end opened the way the baselines open theirs (outside the timed window).
        var handle = await FifoRun.OpenBlockingAsync(
            () => File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite), context.CancellationToken);
        return FdConnection.FromFd(handle, Options(context));
    }
}
