using System.Diagnostics;

namespace PipeTransport.Tests;

/// <summary>Helpers for tests that need real peers and fd counts.</summary>
public static class TestProcess
{
    /// <summary>
    /// Open fds of the kinds the library creates (see <see cref="FdTestHelpers.OpenFdCount"/>), after
    /// pending finalizers ran: an earlier test's <see cref="Process"/> leaves its redirected pipes to
    /// the finalizer, which would otherwise close them in the middle of a later count.
    /// </summary>
    public static int OpenFdCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return FdTestHelpers.OpenFdCount();
    }

    /// <summary>Closes the redirected streams (Process.Dispose leaves them to the finalizer) and disposes.</summary>
    public static void Close(Process process)
    {
        // The base streams, not the writer/readers: a test may have closed stdin through a PipeWriter already.
        process.StandardInput.BaseStream.Dispose();
        process.StandardOutput.BaseStream.Dispose();
        process.StandardError.BaseStream.Dispose();
        process.Dispose();
    }

    public static Process Start(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
    }

    /// <summary>Reads stderr lines until one contains <paramref name="marker"/> (a peer saying it is ready).</summary>
    public static async Task WaitForStderrAsync(Process process, string marker, CancellationToken ct)
    {
        while (await process.StandardError.ReadLineAsync(ct) is { } line)
        {
            if (line.Contains(marker, StringComparison.Ordinal))
            {
                return;
            }
        }

        throw new InvalidOperationException($"{process.StartInfo.FileName} ended before printing '{marker}'");
    }
}
