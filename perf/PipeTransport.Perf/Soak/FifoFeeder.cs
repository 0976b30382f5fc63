using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using PipeTransport.Perf.Data;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// The two outer ends of the server's FIFO bridge: a writer thread that sends one transfer per
/// conversation (a header with the transfer number and length, then <see cref="TransferSize"/> bytes of
/// the seeded pattern, paced to a rate) and a reader thread, which keeps the response FIFO open for the
/// whole soak, hashes everything that comes back and checks each transfer's length and hash against what
/// was sent. The writer asks the server for each conversation and waits for its end before it asks for
/// the next. Blocking <c>open</c>/<c>read</c>/<c>write</c> on background threads: the harness is not what
/// is measured.
/// </summary>
internal sealed class FifoFeeder
{
    public const int TransferSize = 32 << 20;
    private const int HeaderSize = 2 * sizeof(long); // transfer number, payload length
    private const int WriteSize = 64 * 1024;
    private static readonly TimeSpan s_matchTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_conversationTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_retryDelay = TimeSpan.FromMilliseconds(100);

    private readonly string _fifoIn;
    private readonly string _fifoOut;
    private readonly SoakServerProcess _server;
    private readonly SoakLedger _ledger;
    private readonly double _bytesPerSecond;
    private readonly ConcurrentDictionary<long, (long Bytes, ulong Hash)> _sent = new();
    private readonly ConcurrentDictionary<long, bool> _failed = new();
    private readonly Thread _writer;
    private readonly Thread _reader;
    private long _sentCount;
    private long _verifiedTransfers;
    private long _verifiedBytes;
    private volatile bool _stopWriting;
    private volatile bool _stopReading;

    public FifoFeeder(string fifoIn, string fifoOut, SoakServerProcess server, SoakLedger ledger, double bytesPerSecond)
    {
        _fifoIn = fifoIn;
        _fifoOut = fifoOut;
        _server = server;
        _ledger = ledger;
        _bytesPerSecond = bytesPerSecond;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "soak FIFO writer" };
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "soak FIFO reader" };
    }

    public long VerifiedTransfers => Interlocked.Read(ref _verifiedTransfers);

    public long VerifiedBytes => Interlocked.Read(ref _verifiedBytes);

    public long SentTransfers => Interlocked.Read(ref _sentCount);

    public void Start()
    {
        _writer.Start();
        _reader.Start();
    }

    /// <summary>Lets the writer finish its transfer, then waits until the reader has checked every transfer sent.</summary>
    public async Task StopAsync()
    {
        _stopWriting = true;
        var deadline = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(TransferSize / _bytesPerSecond) + s_matchTimeout;
        while ((_writer.IsAlive || VerifiedTransfers < SentTransfers) && deadline.Elapsed < limit && _server.Exit is null)
        {
            await Task.Delay(50);
        }

        if (VerifiedTransfers < SentTransfers && _server.Exit is null)
        {
            _ledger.Unexpected("FIFO bridge", "transfers sent but never received", $"{SentTransfers - VerifiedTransfers} of {SentTransfers}");
        }

        _stopReading = true;
    }

    private void WriteLoop()
    {
        // A blocking open of the request FIFO, kept across conversations until it meets a read end: a
        // conversation that fails before it opens its read end (EMFILE) leaves it pending for the next.
        Task<FileStream>? open = null;
        var header = new byte[HeaderSize];
        for (long index = 1; !_stopWriting; index++)
        {
            double started = _ledger.Now;
            Task<string?> ended;
            try
            {
                _server.RequestFifoConversationAsync(CancellationToken.None).GetAwaiter().GetResult();
                ended = _server.FifoEnds.Reader.ReadAsync().AsTask();
            }
            catch (IOException)
            {
                return; // the server is gone
            }

            open ??= Task.Factory.StartNew(
                () => new FileStream(_fifoIn, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0), TaskCreationOptions.LongRunning);
            Task.WaitAny(open, ended);
            bool sent = false;
            var hash = new StreamHash();
            if (open.IsCompleted)
            {
                try
                {
                    using var fifo = open.GetAwaiter().GetResult();
                    open = null;
                    BinaryPrimitives.WriteInt64LittleEndian(header, index);
                    BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(sizeof(long)), TransferSize);
                    fifo.Write(header);
                    hash.Append(header);
                    var pattern = new DataPattern(unchecked((int)index));
                    var paced = Stopwatch.StartNew();
                    for (long offset = 0; offset < TransferSize;)
                    {
                        var slice = pattern.Slice(offset, (int)Math.Min(WriteSize, TransferSize - offset));
                        fifo.Write(slice.Span);
                        hash.Append(slice.Span);
                        offset += slice.Length;
                        var due = TimeSpan.FromSeconds(offset / _bytesPerSecond);
                        if (due > paced.Elapsed)
                        {
                            Thread.Sleep(due - paced.Elapsed);
                        }
                    }

                    sent = true;
                }
                catch (IOException e)
                {
                    // EPIPE: the conversation closed its read end, e.g. when its second open failed at the fd limit.
                    open = null;
                    _failed[index] = true;
                    _ledger.FdLimitOnly("FIFO feeder", "write failed", started, $"transfer {index}: {SoakServer.OneLine(e.Message)}");
                }
            }

            // The server's own line about a failed conversation went to the ledger already.
            try
            {
                if (!ended.Wait(s_conversationTimeout))
                {
                    _ledger.Unexpected("FIFO bridge", "a conversation did not end", $"transfer {index}");
                    return;
                }
            }
            catch (AggregateException)
            {
                return; // the server is gone
            }

            if (sent)
            {
                _sent[index] = (hash.Length, hash.Finish());
                Interlocked.Increment(ref _sentCount);
            }
            else
            {
                _failed[index] = true;
                Thread.Sleep(s_retryDelay); // at the fd limit every conversation fails at once
            }
        }
    }

    private void ReadLoop()
    {
        try
        {
            using var fifo = new FileStream(_fifoOut, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            var buffer = new byte[1 << 20];
            var header = new byte[HeaderSize];
            var hash = new StreamHash();
            long bytes = 0; // of the current transfer, header included
            long length = -1; // the current transfer's, once its header is in
            bool verifying = true;
            while (!_stopReading)
            {
                int n = fifo.Read(buffer);
                if (n == 0)
                {
                    Thread.Sleep(2); // no writer between conversations: read returns 0 at once
                    continue;
                }

                // The transfers are framed in-band: the next conversation's writer can open before this
                // reader sees the previous one's EOF, so EOF is no boundary.
                for (var data = buffer.AsSpan(0, n); data.Length > 0 && verifying;)
                {
                    int take = (int)Math.Min(data.Length, bytes < HeaderSize ? HeaderSize - bytes : HeaderSize + length - bytes);
                    if (bytes < HeaderSize)
                    {
                        data[..take].CopyTo(header.AsSpan((int)bytes));
                    }

                    hash.Append(data[..take]);
                    bytes += take;
                    data = data[take..];
                    if (bytes == HeaderSize)
                    {
                        length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(sizeof(long)));
                        if (length != TransferSize)
                        {
                            _ledger.Unexpected("FIFO bridge", "bytes differ from those sent", $"a transfer header says {length} bytes; later transfers not checked");
                            verifying = false;
                            break;
                        }
                    }

                    if (bytes == HeaderSize + length)
                    {
                        long index = BinaryPrimitives.ReadInt64LittleEndian(header);
                        // After a mismatch the framing is lost: the rest of the stream is only drained.
                        verifying = verifying && Check(index, bytes, hash.Finish());
                        hash = new StreamHash();
                        bytes = 0;
                        length = -1;
                    }
                }
            }
        }
        catch (IOException e)
        {
            _ledger.Unexpected("FIFO reader", "read failed", SoakServer.OneLine(e.Message));
        }
    }

    private bool Check(long index, long bytes, ulong hash)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (_sent.TryGetValue(index, out var sent))
            {
                if (sent.Bytes == bytes && sent.Hash == hash)
                {
                    Interlocked.Increment(ref _verifiedTransfers);
                    Interlocked.Add(ref _verifiedBytes, bytes);
                    return true;
                }

                _ledger.Unexpected("FIFO bridge", "bytes differ from those sent",
                    $"transfer {index}: {bytes} bytes hash {hash:x16}, sent {sent.Bytes} bytes hash {sent.Hash:x16}; later transfers not checked");
                return false;
            }

            if (_failed.ContainsKey(index) || waited.Elapsed > s_matchTimeout)
            {
                // A failed writer's bytes never reach the server's write end (it closed its read end),
                // so a failed transfer arriving means the bridge moved bytes it should not have.
                _ledger.Unexpected("FIFO bridge", "received a transfer never sent whole", $"header {index}, {bytes} bytes; later transfers not checked");
                return false;
            }

            Thread.Sleep(5);
        }
    }
}
