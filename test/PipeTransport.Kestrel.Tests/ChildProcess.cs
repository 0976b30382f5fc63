using System.Diagnostics;
using System.Threading.Channels;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// A real program the test starts, its stdout and stderr read line by line. The test children stop when
/// their stdin closes (<see cref="StopAsync"/>); disposing kills whatever is still running.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _output = [];
    private int _closedStreams;

    private ChildProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the child wrote so far (stdout and stderr), for assertion messages.</summary>
    public string Output
    {
        get { lock (_output) return string.Join('\n', _output); }
    }

    public static ChildProcess Start(string fileName, params IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        var child = new ChildProcess(process);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The <c>dotnet</c> host on PATH, by its full path (a program that passes on only PATH still finds it).</summary>
    public static string DotnetHost() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "dotnet"))
            .FirstOrDefault(File.Exists) ?? throw new InvalidOperationException("no dotnet on PATH");

    /// <summary>The arguments that run this test assembly in one of its child modes (see <see cref="Program"/>).</summary>
    public static string[] TestChildArguments(params string[] mode) => [typeof(ChildProcess).Assembly.Location, "--child", .. mode];

    /// <summary>Waits for an output line containing <paramref name="marker"/>; returns what follows it. Fails once the child has exited.</summary>
    public async Task<string> WaitLineAsync(string marker, CancellationToken cancellationToken)
    {
        while (true)
        {
            string line = await _lines.Reader.ReadAsync(cancellationToken);
            int at = line.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0)
            {
                return line[(at + marker.Length)..].Trim();
            }
        }
    }

    /// <summary>Closes the child's stdin and returns its exit code.</summary>
    public async Task<int> StopAsync(CancellationToken cancellationToken)
    {
        _process.StandardInput.Close();
        await _process.WaitForExitAsync(cancellationToken);
        return _process.ExitCode;
    }

    /// <summary>Waits for the child to exit by itself and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        return _process.ExitCode;
    }

    /// <summary>Sends <paramref name="signal"/> to the child.</summary>
    public void Signal(Mono.Unix.Native.Signum signal) => Mono.Unix.Native.Syscall.kill(_process.Id, signal);

    private void OnLine(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Increment(ref _closedStreams) == 2)
            {
                _lines.Writer.TryComplete(new InvalidOperationException($"the child exited: {Output}"));
            }

            return;
        }

        lock (_output)
        {
            _output.Add(line);
        }

        _lines.Writer.TryWrite(line);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
