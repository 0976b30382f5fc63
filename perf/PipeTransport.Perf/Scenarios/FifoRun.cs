using PipeTransport.Perf.Data;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// The plumbing shared by the FIFO scenarios: fresh FIFOs per run, the writer (and reader) child
/// processes, timing from the writer's first byte, and the end-to-end hash check.
/// </summary>
internal static class FifoRun
{
    /// <summary>Makes a fresh FIFO at <paramref name="name"/> in the work directory.</summary>
    public static string NewFifo(RunContext context, string name)
    {
        string path = Path.Combine(context.WorkDirectory, name);
        File.Delete(path);
        Fifo.Create(path);
        return path;
    }

    /// <summary>Starts the writer child for <paramref name="path"/> and waits until it is about to open.</summary>
    public static async Task<ChildProcess> StartWriterAsync(RunContext context, string path)
    {
        var s = context.Settings;
        var writer = ChildProcess.StartSelf(false, "writer", path, context.Size.ToString(), PerfSettings.Seed.ToString(),
            s.BufferSize.ToString(), s.PipeSize.ToString());
        await writer.ExpectAsync("ready", context.CancellationToken);
        return writer;
    }

    /// <summary>Starts the hashing reader child for <paramref name="path"/> and waits until it is about to open.</summary>
    public static async Task<ChildProcess> StartReaderAsync(RunContext context, string path)
    {
        var reader = ChildProcess.StartSelf(false, "reader", path, (1 << 20).ToString(), context.Settings.PipeSize.ToString());
        await reader.ExpectAsync("ready", context.CancellationToken);
        return reader;
    }

    /// <summary>Reads the writer's "done" line and returns its start timestamp.</summary>
    public static async Task<long> FinishWriterAsync(RunContext context, ChildProcess writer)
    {
        var done = await writer.ExpectAsync("done ", context.CancellationToken);
        await writer.WaitForSuccessAsync(context.CancellationToken);
        return long.Parse(done[0]);
    }

    /// <summary>Computes (once per size) the hash <see cref="Verify"/> expects, so it never runs while another variant is measured.</summary>
    public static void PrepareExpectedHash(RunContext context) => DataPattern.ExpectedHash(context.Size, PerfSettings.Seed);

    /// <summary>Throws unless the bytes seen are exactly the pattern the writer sent.</summary>
    public static void Verify(RunContext context, ulong hash, long bytes)
    {
        if (bytes != context.Size)
        {
            throw new InvalidDataException($"received {bytes} bytes, expected {context.Size}");
        }

        ulong expected = DataPattern.ExpectedHash(context.Size, PerfSettings.Seed);
        if (hash != expected)
        {
            throw new InvalidDataException($"hash {hash:x16} differs from the sent data's {expected:x16}");
        }
    }

    /// <summary>
    /// Opens a FIFO with a blocking open off the calling thread (the peer child is already about to
    /// open its end), so a dead child turns into a timeout rather than a hang.
    /// </summary>
    public static Task<T> OpenBlockingAsync<T>(Func<T> open, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(open, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .WaitAsync(cancellationToken);
}
