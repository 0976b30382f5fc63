using System.Diagnostics;
using System.Text;

namespace PipeTransport.Perf.Harness;

/// <summary>
/// A child process whose stdout is read line by line (the children report "ready" and "done ..."
/// lines) and whose stderr is kept for the error message. Disposing kills it if it still runs.
/// Children inherit the CPU affinity, so <c>taskset -c 0</c> pins the whole run.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly string _display;

    private ChildProcess(string fileName, IEnumerable<string> arguments, bool redirectStdin, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdin,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        _display = fileName + " " + string.Join(' ', info.ArgumentList);
        _process = new Process { StartInfo = info };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        _process.Start();
        _process.BeginErrorReadLine();
    }

    /// <summary>Standard input of the child (only when started with <c>redirectStdin</c>).</summary>
    public StreamWriter StandardInput => _process.StandardInput;

    /// <summary>The child's process id.</summary>
    public int Id => _process.Id;

    /// <summary>Starts an external program.</summary>
    public static ChildProcess Start(string fileName, params string[] arguments) => new(fileName, arguments, false);

    /// <summary>
    /// Starts an external program under <c>/bin/sh</c>, which reports the program's CPU time (user and
    /// system, all its threads, 10 ms resolution) with <c>times</c> on stderr when it exits; read it with
    /// <see cref="ChildCpuTime"/> after <see cref="WaitForSuccessAsync"/>.
    /// </summary>
    public static ChildProcess StartMeasured(string fileName, params string[] arguments) =>
        new("/bin/sh", ["-c", "\"$@\"; status=$?; times >&2; exit $status", "sh", fileName, .. arguments], false);

    /// <summary>The CPU time (user + system) that <c>times</c> reported for a <see cref="StartMeasured"/> child.</summary>
    public TimeSpan ChildCpuTime()
    {
        _process.WaitForExit(); // flushes the asynchronous stderr reader
        string[] lines = Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string[] words = lines.Length > 0 ? lines[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
        if (words.Length != 2)
        {
            throw new InvalidOperationException($"no CPU times from '{_display}': {Stderr}");
        }

        return ParseTimes(words[0]) + ParseTimes(words[1]);
    }

    // "1m2.340000s" (dash) or "1m2.340s" (bash).
    private static TimeSpan ParseTimes(string text)
    {
        int m = text.IndexOf('m');
        double minutes = double.Parse(text[..m], System.Globalization.CultureInfo.InvariantCulture);
        double seconds = double.Parse(text[(m + 1)..].TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(minutes * 60 + seconds);
    }

    /// <summary>Starts this harness again in one of its child modes (<c>writer</c>, <c>reader</c>, ...).</summary>
    public static ChildProcess StartSelf(bool redirectStdin, params string[] arguments) => StartSelf(redirectStdin, null, arguments);

    /// <summary>Starts this harness again in a child mode, with extra environment variables.</summary>
    public static ChildProcess StartSelf(bool redirectStdin, IReadOnlyDictionary<string, string>? environment, params string[] arguments) =>
        StartSelfUnder([], redirectStdin, environment, arguments);

    /// <summary>
    /// Starts this harness again in a child mode through a wrapper that execs it, e.g.
    /// <c>prlimit --nofile=N:N --</c>: the child keeps the wrapper's process id.
    /// </summary>
    public static ChildProcess StartSelfUnder(IReadOnlyList<string> wrapper, bool redirectStdin, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var args = new List<string>(wrapper.Skip(1));
        if (wrapper.Count > 0)
        {
            args.Add(host);
        }

        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            args.Add(typeof(ChildProcess).Assembly.Location);
        }

        args.AddRange(arguments);
        return new ChildProcess(wrapper.Count > 0 ? wrapper[0] : host, args, redirectStdin, environment);
    }

    /// <summary>Reads stdout lines until one starts with <paramref name="prefix"/> and returns the words after it.</summary>
    public async Task<string[]> ExpectAsync(string prefix, CancellationToken cancellationToken)
    {
        while (true)
        {
            // WaitAsync: a pending read of a pipe does not notice the token by itself.
            string? line = await _process.StandardOutput.ReadLineAsync(cancellationToken).AsTask().WaitAsync(cancellationToken);
            if (line is null)
            {
                await _process.WaitForExitAsync(cancellationToken);
                throw new InvalidOperationException(
                    $"child '{_display}' exited with {_process.ExitCode} before saying '{prefix}': {Stderr}");
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
        }
    }

    /// <summary>Waits for exit and throws if the exit code is not zero.</summary>
    public async Task WaitForSuccessAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        if (_process.ExitCode != 0)
        {
            throw new InvalidOperationException($"child '{_display}' exited with {_process.ExitCode}: {Stderr}");
        }
    }

    private string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString().Trim();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
