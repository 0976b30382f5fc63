using System.Diagnostics;
using System.IO.Pipes;
using Microsoft.Win32.SafeHandles;

namespace PipeTransport.Bridge;

/// <summary>
/// The child process of an <c>exec:</c> or <c>system:</c> address. Its stdin and stdout are pipes
/// (not a socketpair): each direction then ends on its own (closing the stdin pipe is the child's EOF,
/// the child closing stdout is ours, whatever it does with the other), and splice moves bytes
/// between a pipe and a socket directly. Its stderr is pipebridge's; every other fd of pipebridge is
/// O_CLOEXEC, so the child has 0, 1 and 2 only.
/// </summary>
internal sealed class ChildProgram
{
    /// <summary>A child still running this long after SIGTERM gets SIGKILL, so pipebridge itself can end.</summary>
    private static readonly TimeSpan KillAfter = TimeSpan.FromSeconds(2);

    private readonly Process _process;

    private ChildProgram(ExecAddress address, Process process, FdConnection connection)
    {
        Address = address;
        _process = process;
        Connection = connection;
    }

    public ExecAddress Address { get; }

    /// <summary>Reads the child's stdout, writes its stdin (the one the role asked for).</summary>
    public FdConnection Connection { get; }

    public int Pid => _process.Id;

    /// <summary>
    /// Starts the program. Read only (-u, ADDRESS1): its stdin is an empty pipe. Write only: its stdout is
    /// pipebridge's stdout, as in socat.
    /// </summary>
    public static ChildProgram Start(ExecAddress address, Role role, FdConnectionOptions options)
    {
        var info = new ProcessStartInfo
        {
            FileName = address.Shell ? "/bin/sh" : ResolveProgram(address.Arguments[0]),
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = role.HasFlag(Role.Read),
        };
        if (address.Shell) info.ArgumentList.Add("-c");
        foreach (string argument in address.Shell ? address.Arguments : address.Arguments.Skip(1))
            info.ArgumentList.Add(argument);
        Process process = Process.Start(info) ?? throw new InvalidOperationException($"{address}: the process did not start");
        try
        {
            // The Process class made the pipes (O_CLOEXEC); the connection adopts our ends of them.
            SafePipeHandle stdin = ((PipeStream)process.StandardInput.BaseStream).SafePipeHandle;
            FdConnection connection;
            if (role.HasFlag(Role.Read))
            {
                SafePipeHandle stdout = ((PipeStream)process.StandardOutput.BaseStream).SafePipeHandle;
                if (role.HasFlag(Role.Write))
                {
                    connection = FdConnection.FromFds(stdout, stdin, options);
                }
                else
                {
                    stdin.Dispose();
                    connection = FdConnection.FromFd(stdout, options);
                }
            }
            else
            {
                connection = FdConnection.FromFd(stdin, options);
            }
            return new ChildProgram(address, process, connection);
        }
        catch
        {
            Terminate(process);
            process.Dispose();
            throw;
        }
    }

    /// <summary>Waits for the child to exit and returns its status (128 + N when signal N ended it).</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return _process.ExitCode;
    }

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Ends a child that is still running (SIGTERM, as socat does when its address ends; SIGKILL after
    /// <see cref="KillAfter"/>), reaps it and frees the Process.
    /// </summary>
    public async ValueTask StopAsync()
    {
        Terminate(_process);
        using (var patience = new CancellationTokenSource(KillAfter))
        {
            try
            {
                await _process.WaitForExitAsync(patience.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
                await _process.WaitForExitAsync().ConfigureAwait(false);
            }
        }
        _process.Dispose();
    }

    private static void Terminate(Process process)
    {
        try
        {
            if (!process.HasExited) Mono.Unix.Native.Syscall.kill(process.Id, Mono.Unix.Native.Signum.SIGTERM);
        }
        catch (InvalidOperationException)
        {
            // Exited and reaped meanwhile.
        }
    }

    /// <summary>
    /// execvp(3)'s search: a name with a '/' is a path; otherwise the first executable file of that
    /// name in $PATH (the Process class would look in the current and dotnet's directories first).
    /// </summary>
    private static string ResolveProgram(string name)
    {
        if (name.Contains('/')) return name;
        string path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/local/bin:/usr/bin:/bin";
        foreach (string directory in path.Split(':'))
        {
            string candidate = Path.Combine(directory.Length == 0 ? "." : directory, name);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & ExecuteBits) != 0)
                return candidate;
        }
        throw new PipeTransportException(Mono.Unix.Native.Errno.ENOENT, "exec", name, $"'{name}' is not in PATH");
    }

    private const UnixFileMode ExecuteBits = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
}
