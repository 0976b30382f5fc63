using System.Diagnostics;

namespace PipeTransport.Tests;

/// <summary>Helpers for tests that need real peers and fd counts.</summary>
public static class TestProcess
{
    /// <summary>Open fds of the kinds the library creates (see <see cref="FdTestHelpers.OpenFdCount"/>).</summary>
    public static int OpenFdCount() => FdTestHelpers.OpenFdCount();

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
