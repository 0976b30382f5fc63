using System.Globalization;
using System.Threading.Channels;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Soak;

/// <summary>The server's own view at a checkpoint (see <see cref="SoakServer"/>'s <c>live</c> line).</summary>
/// <param name="LiveHeap">Managed bytes that survived a full blocking compacting collection.</param>
/// <param name="Fds">Its open fds at that moment.</param>
/// <param name="Connections">Connections Kestrel was serving at that moment.</param>
/// <param name="FifoFds">Fds of the FIFO conversation open at that moment (0 or 2).</param>
/// <param name="PoolCached">Bytes of the blocks the transport's shared pool kept for reuse at that moment (part of <paramref name="LiveHeap"/>).</param>
internal sealed record ServerCheckpoint(long LiveHeap, int Fds, int Connections, int FifoFds, long PoolCached)
{
    /// <summary>Fds no connection accounts for: what a leak of fds makes grow.</summary>
    public int UnownedFds => Fds - Connections - FifoFds;
}

/// <summary>
/// The <c>soak-server</c> child, started under <c>prlimit --nofile=N:N</c> (prlimit execs it, so its
/// process id is the one sampled). Reads its stdout lines for the whole soak: the heap it reports every
/// second, the FIFO bridge's conversations, and whatever it did not expect, which goes to the ledger.
/// </summary>
internal sealed class SoakServerProcess : IAsyncDisposable
{
    private readonly ChildProcess _child;
    private readonly SoakLedger _ledger;
    private readonly Task _reader;
    private readonly Channel<ServerCheckpoint> _live = Channel.CreateUnbounded<ServerCheckpoint>();
    private readonly SemaphoreSlim _stdin = new(1, 1);
    private long _gcHeap;
    private long _heapAtLastGc;
    private long _clientAborts;
    private long _fifoConversations;
    private volatile string? _exit;
    private volatile bool _stopping;

    private SoakServerProcess(ChildProcess child, SoakLedger ledger, int port)
    {
        _child = child;
        _ledger = ledger;
        Port = port;
        _reader = ReadLinesAsync();
    }

    public int Port { get; }

    public int Pid => _child.Id;

    /// <summary>Why the server is gone (its exit and stderr), or null while it runs.</summary>
    public string? Exit => _exit;

    public long GcHeap => Interlocked.Read(ref _gcHeap);

    public long HeapAtLastGc => Interlocked.Read(ref _heapAtLastGc);

    /// <summary>Requests the server's app saw end in a client's reset or abort (the chaos at work).</summary>
    public long ClientAborts => Interlocked.Read(ref _clientAborts);

    /// <summary>The ends of the FIFO conversations, in order: the errno name of a failed one, null for one copied to the end.</summary>
    public Channel<string?> FifoEnds { get; } = Channel.CreateUnbounded<string?>();

    /// <summary>FIFO conversations the server copied to the end.</summary>
    public long FifoConversations => Interlocked.Read(ref _fifoConversations);

    public static async Task<SoakServerProcess> StartAsync(string transport, int fdLimit, string fifoIn, string fifoOut, SoakLedger ledger, CancellationToken cancellationToken)
    {
        var child = ChildProcess.StartSelfUnder(
            ["prlimit", $"--nofile={fdLimit}:{fdLimit}", "--"], true, null, "soak-server", transport, fifoIn, fifoOut);
        try
        {
            string[] ready = await child.ExpectAsync("ready ", cancellationToken);
            return new SoakServerProcess(child, ledger, int.Parse(ready[0], CultureInfo.InvariantCulture));
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a full blocking collection in the server and returns what survived it and the server's fds.</summary>
    public async Task<ServerCheckpoint> CheckpointAsync(CancellationToken cancellationToken)
    {
        await SendAsync("gc", cancellationToken);
        return await _live.Reader.ReadAsync(cancellationToken);
    }

    /// <summary>Asks for the next FIFO conversation; its end comes through <see cref="FifoEnds"/>.</summary>
    public Task RequestFifoConversationAsync(CancellationToken cancellationToken) => SendAsync("fifo", cancellationToken);

    private async Task SendAsync(string command, CancellationToken cancellationToken)
    {
        await _stdin.WaitAsync(cancellationToken);
        try
        {
            await _child.StandardInput.WriteLineAsync(command.AsMemory(), cancellationToken);
            await _child.StandardInput.FlushAsync(cancellationToken);
        }
        finally
        {
            _stdin.Release();
        }
    }

    private async Task ReadLinesAsync()
    {
        try
        {
            while (true)
            {
                string[] words = await _child.ExpectAsync("", CancellationToken.None);
                Dispatch(words);
            }
        }
        catch (Exception e)
        {
            _exit = SoakServer.OneLine(e.Message);
            if (!_stopping)
            {
                _ledger.Unexpected("server", "died", _exit);
            }

            _live.Writer.TryComplete(e);
            FifoEnds.Writer.TryComplete();
        }
    }

    private void Dispatch(string[] words)
    {
        if (words.Length == 0)
        {
            return;
        }

        var inv = CultureInfo.InvariantCulture;
        string rest = string.Join(' ', words.Skip(1));
        switch (words[0])
        {
            case "stat" when words.Length == 4:
                Interlocked.Exchange(ref _gcHeap, long.Parse(words[1], inv));
                Interlocked.Exchange(ref _heapAtLastGc, long.Parse(words[2], inv));
                Interlocked.Exchange(ref _clientAborts, long.Parse(words[3], inv));
                break;
            case "live" when words.Length == 6:
                _live.Writer.TryWrite(new ServerCheckpoint(
                    long.Parse(words[1], inv), int.Parse(words[2], inv), int.Parse(words[3], inv), int.Parse(words[4], inv), long.Parse(words[5], inv)));
                break;
            case "fifo-done":
                Interlocked.Increment(ref _fifoConversations);
                FifoEnds.Writer.TryWrite(null);
                break;
            case "fifo-error" when words.Length >= 3:
                FifoEnds.Writer.TryWrite(words[2]);
                // Opening a FIFO needs an fd: EMFILE is what the fd-limit periods are for.
                if (words[2] is "EMFILE" or "ENFILE")
                {
                    _ledger.FdLimitOnly("server FIFO bridge", "open: " + words[2], _ledger.Now, rest);
                }
                else
                {
                    _ledger.Unexpected("server FIFO bridge", words[2], rest);
                }

                break;
            case "app-error" when words.Length >= 2:
                _ledger.Unexpected("server app", words[1], rest);
                break;
            case "log" when words.Length >= 4:
                // Kestrel's and the transport's warnings (e.g. a slow heartbeat on a busy machine) are
                // reported; an error (an accept loop that ended, an unhandled exception) fails the soak.
                bool error = words[1] is "Error" or "Critical";
                _ledger.Add("server log " + words[1], words[2] + " " + words[3], expected: !error, 1, rest);
                break;
            default:
                _ledger.Unexpected("server stdout", words[0], rest);
                break;
        }
    }

    /// <summary>Closes its stdin (a graceful stop) and waits for it; a server that already died is only reaped.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            bool dead = _exit is not null;
            _stopping = true;
            if (!dead)
            {
                await StopAsync();
            }
        }
        finally
        {
            await _child.DisposeAsync();
        }
    }

    private async Task StopAsync()
    {
        try
        {
            await _stdin.WaitAsync();
            _child.StandardInput.Close();
        }
        catch (IOException)
        {
            // It died just now: the reader has the reason.
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await _reader.WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _ledger.Unexpected("server", "did not stop within 15 s of its stdin closing");
            return;
        }

        if (_exit is { } exit && !exit.Contains(" exited with 0 ", StringComparison.Ordinal))
        {
            _ledger.Unexpected("server", "failed to stop", exit);
        }
    }
}
