//! The public vocabulary both transports share, written once: the endpoint methods
//! of a client and the methods of the live connections, as macros that make the async
//! set (`[async], [.await]`) or the blocking one (`[], []`). A user sees ordinary
//! methods with their docs; moving between the transports is adding or removing
//! `.await`.

/// The constructors and accessors of a client (`new`, `from_env`, `builder`, `config`,
/// `options`, `with_retry_policy`, `tts_limiter`) and its `Debug`, which shows the
/// configuration (key redacted) and the options.
///
/// The invoking module's `Client` has fields `inner` (with a `config: Config`) and
/// `options: ClientOptions`, and a `ClientBuilder` alias in scope.
#[macro_export]
macro_rules! client_basics {
    () => {
        impl Client {
            /// A client for `config` with the default options.
            pub fn new(config: Config) -> Result<Client, Error> {
                Client::builder(config).build()
            }

            /// A client configured from `SMALLEST_API_KEY` and, when set, `SMALLEST_BASE_URL`.
            pub fn from_env() -> Result<Client, Error> {
                Client::new(Config::from_env()?)
            }

            /// A builder, for extra roots, time and body limits, retries and TTS slots.
            pub fn builder(config: Config) -> ClientBuilder {
                ClientBuilder::new(config)
            }

            /// The configuration.
            pub fn config(&self) -> &Config {
                &self.inner.config
            }

            /// The options (their meaning and defaults: [`smallest_core::options`]).
            pub fn options(&self) -> &ClientOptions {
                &self.options
            }

            /// The same client (same pool, same TTS slots) with another retry policy, e.g.
            /// `client.with_retry_policy(RetryPolicy::none())` for one call without retries.
            pub fn with_retry_policy(&self, policy: RetryPolicy) -> Client {
                Client {
                    inner: self.inner.clone(),
                    options: self.options.with_retry_policy(policy),
                }
            }

            /// The account's TTS slots this client queues on.
            pub fn tts_limiter(&self) -> &TtsLimiter {
                self.options.tts_limiter()
            }
        }

        impl std::fmt::Debug for Client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Client")
                    .field("config", &self.inner.config)
                    .field("options", &self.options)
                    .finish_non_exhaustive()
            }
        }
    };
}

/// The endpoint methods of a client, each a call of the client's `send`.
///
/// The invoking `impl Client` has a `drive(call, body)` interpreter of the core's `Call`
/// and an `Outgoing::whole(bytes)` request body, and the usual request and response
/// types of the API in scope (`Endpoint`, `TtsRequest`, `Audio`, `Error` …).
#[macro_export]
macro_rules! endpoint_methods {
    (async: [$($async:tt)*], await: [$($await:tt)*]) => {
            /// Runs any operation the core describes: the core's
            /// [`Call`]($crate::core::call::Call) machine decides (slot, retries, limits);
            /// the transport sends, reads and sleeps as it is told.
            pub $($async)* fn send<E: Endpoint + ?Sized>(&self, endpoint: &E) -> Result<E::Output, Error> {
                let call = $crate::core::call::Call::new(endpoint, &self.inner.config, &self.options, $crate::seed());
                self.drive(call, |bytes| Ok(Outgoing::whole(bytes)))$($await)*
                    .map(|(output, _, _)| output)
            }

            /// `POST /waves/v1/tts`: synthesizes speech in one piece (at most
            /// [`max_audio_bytes`]($crate::core::ClientBuilder::max_audio_bytes) of it; longer audio streams
            /// with [`synthesize_stream`](Self::synthesize_stream)).
            pub $($async)* fn synthesize(&self, request: &TtsRequest) -> Result<Audio, Error> {
                self.send(request)$($await)*
            }

            /// Synthesizes a text of any length: split at sentence ends into requests of at most
            /// 250 characters (the API's recommended size), synthesized one after another through
            /// the TTS limiter, and joined in order into one [`Audio`].
            pub $($async)* fn synthesize_long(&self, request: &TtsRequest) -> Result<Audio, Error> {
                request.validate()?;
                let mut parts = Vec::new();
                for piece in request.split() {
                    parts.push(self.synthesize(&piece)$($await)*?);
                }
                Audio::concat(parts)
            }

            /// `POST /waves/v1/stt/`: transcribes a recording (bytes or URL).
            pub $($async)* fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription, Error> {
                self.send(request)$($await)*
            }

            /// `POST /waves/v1/pulse/get_text`: the legacy transcription endpoint.
            pub $($async)* fn transcribe_legacy(
                &self,
                request: &LegacyTranscribeRequest,
            ) -> Result<Transcription, Error> {
                self.send(request)$($await)*
            }

            /// `GET /waves/v1/lightning-v3.1/get_voices`: the voices of the default model
            /// (standard and Pro catalogs, plus your clones). Filter them with [`VoiceFilter`];
            /// other models via [`send`](Self::send) with a [`GetVoices`].
            pub $($async)* fn voices(&self) -> Result<Vec<Voice>, Error> {
                self.send(&GetVoices::default())$($await)*
            }

            /// `GET /waves/v1/voice/get-all-models`: the voice catalog with audio previews.
            pub $($async)* fn voice_catalog(&self) -> Result<Vec<CatalogVoice>, Error> {
                self.send(&GetVoiceCatalog)$($await)*
            }

            /// `POST /waves/v1/voice-cloning`: creates an instant voice clone from a 5–15 s
            /// recording. A fresh random multipart boundary is chosen when the request has none.
            /// (There is no API-key delete for clones: remove them in the console.)
            pub $($async)* fn create_voice_clone(
                &self,
                request: &CreateVoiceClone,
            ) -> Result<VoiceClone, Error> {
                let request = request.with_random_boundary($crate::nonce16());
                self.send(&request)$($await)*
            }

            /// `GET /waves/v1/voice-cloning`: the clones of your organization.
            pub $($async)* fn list_voice_clones(&self) -> Result<Vec<ClonedVoice>, Error> {
                self.send(&ListVoiceClones)$($await)*
            }

            /// `GET /waves/v1/pronunciation-dicts`: your pronunciation dictionaries.
            pub $($async)* fn list_dicts(&self) -> Result<Vec<PronunciationDict>, Error> {
                self.send(&ListDicts)$($await)*
            }

            /// `POST /waves/v1/pronunciation-dicts`: creates a dictionary.
            pub $($async)* fn create_dict(&self, request: &CreateDict) -> Result<PronunciationDict, Error> {
                self.send(request)$($await)*
            }

            /// `PUT /waves/v1/pronunciation-dicts`: replaces a dictionary's items.
            pub $($async)* fn update_dict(&self, request: &UpdateDict) -> Result<PronunciationDict, Error> {
                self.send(request)$($await)*
            }

            /// `DELETE /waves/v1/pronunciation-dicts`: deletes a dictionary.
            pub $($async)* fn delete_dict(&self, request: &DeleteDict) -> Result<DeletedDict, Error> {
                self.send(request)$($await)*
            }

            /// `GET /waves/v1/health`.
            pub $($async)* fn health(&self) -> Result<HealthStatus, Error> {
                self.send(&$crate::core::Health)$($await)*
            }
    };
}

/// The methods of the live connections both transports offer, written once: the whole
/// connection ([`TtsLive`]/[`SttLive`]: its halves' verbs plus `recv`) and the senders.
/// `live_methods!(async: [async], await: [.await])` makes the async set,
/// `live_methods!(async: [], await: [])` the blocking one.
///
/// The invoking module defines `TtsLive`, `TtsLiveSender`, `SttLive` and
/// `SttLiveSender` (each sender with a `conn` that has `act(|session, now| …)`,
/// `with(|session| …)` and `set_keepalive(interval)`, each whole connection with a
/// `sender` and a `receiver` that has `recv()`), and has `Bytes`, `Duration`, `Error`
/// and `TtsLiveConfig` in scope.
///
/// [`TtsLive`]: https://docs.rs/smallest-hyper/latest/smallest_hyper/struct.TtsLive.html
/// [`SttLive`]: https://docs.rs/smallest-hyper/latest/smallest_hyper/struct.SttLive.html
#[macro_export]
macro_rules! live_methods {
    (async: [$($async:tt)*], await: [$($await:tt)*]) => {
        impl TtsLive {
            /// The two halves, for two tasks.
            pub fn split(self) -> (TtsLiveSender, TtsLiveReceiver) {
                (self.sender, self.receiver)
            }

            /// The writing half.
            pub fn sender(&self) -> &TtsLiveSender {
                &self.sender
            }

            /// Sends one piece of text of the current request (opening one if none is being
            /// written); returns the request's index. See [`TtsLiveSender::send_text`].
            pub $($async)* fn send_text(&self, text: &str) -> Result<u64, Error> {
                self.sender.send_text(text)$($await)*
            }

            /// Forces synthesis of the text sent so far, keeping the request open.
            pub $($async)* fn flush(&self) -> Result<u64, Error> {
                self.sender.flush()$($await)*
            }

            /// Ends the request being written; its audio and `Complete` follow.
            pub $($async)* fn finish(&self) -> Result<u64, Error> {
                self.sender.finish()$($await)*
            }

            /// Sends `text` as a whole request (or as the last piece of the one being written).
            pub $($async)* fn speak(&self, text: &str) -> Result<u64, Error> {
                self.sender.speak(text)$($await)*
            }

            /// Starts closing the connection (close frame 1000).
            pub $($async)* fn close(&self) -> Result<(), Error> {
                self.sender.close()$($await)*
            }

            /// Turns keepalive messages on (`Some(interval)`) or off.
            pub fn set_keepalive(&self, interval: Option<Duration>) {
                self.sender.set_keepalive(interval);
            }

            /// A continuation context on this connection (see [`TtsLiveSender::context`]).
            pub fn context(&self, id: &str) -> Result<TtsContext, Error> {
                self.sender.context(id)
            }

            /// The next event, or `None` after the `Closed` event.
            pub $($async)* fn recv(&mut self) -> Option<Result<TtsLiveEvent, Error>> {
                self.receiver.recv()$($await)*
            }
        }

        /// A continuation context (API.md §3.5.1): fragments pushed to it are joined by
        /// the server into one continuous generation, so prosody carries across the
        /// pieces of an LLM's answer. Made by [`TtsLiveSender::context`]; its events
        /// carry its id; [`TtsLiveEvent::ContextDone`] ends it.
        #[derive(Clone)]
        pub struct TtsContext {
            sender: TtsLiveSender,
            id: smallest_core::tts_live::ContextId,
        }

        impl TtsContext {
            /// The context's id.
            pub fn id(&self) -> &smallest_core::tts_live::ContextId {
                &self.id
            }

            /// Sends a fragment (`"continue": true`); returns the context's request
            /// index.
            pub $($async)* fn push(&self, text: &str) -> Result<u64, Error> {
                let id = self.id.clone();
                self.sender
                    .conn
                    .act(|s, now| s.push_context(id.as_str(), text, now))$($await)*
            }

            /// Closes the context (`"continue": false`): the rest of its audio follows,
            /// then [`TtsLiveEvent::ContextDone`].
            pub $($async)* fn finish(&self) -> Result<u64, Error> {
                let id = self.id.clone();
                self.sender
                    .conn
                    .act(|s, now| s.finish_context(id.as_str(), now))$($await)*
            }

            /// Barge-in: sends the cancellation message; no event of this context is
            /// delivered once this returns, whatever the server still sends. `false`:
            /// the context was not in flight.
            pub $($async)* fn cancel(&self) -> Result<bool, Error> {
                let id = self.id.clone();
                self.sender
                    .conn
                    .act(|s, now| s.cancel_context(id.as_str(), now))$($await)*
            }

            /// [`cancel`](Self::cancel) for a server that ignores the cancellation
            /// message: the connection is replaced by a new one (contexts not yet
            /// heard are sent again on it).
            pub $($async)* fn cancel_hard(&self) -> Result<bool, Error> {
                let id = self.id.clone();
                self.sender
                    .conn
                    .act(|s, now| s.cancel_context_hard(id.as_str(), now))$($await)*
            }
        }

        impl std::fmt::Debug for TtsContext {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("TtsContext").field("id", &self.id).finish()
            }
        }

        impl TtsLiveSender {
            /// Sends one piece of text of the current request (`"continue": true`), opening a
            /// request if none is being written. Returns the request's index (0 for the first
            /// request of the connection), which the events of its audio carry. An empty piece
            /// sends nothing.
            pub $($async)* fn send_text(&self, text: &str) -> Result<u64, Error> {
                self.conn.act(|s, now| s.send_text(text, now))$($await)*
            }

            /// Forces synthesis of the text sent so far, keeping the request open.
            pub $($async)* fn flush(&self) -> Result<u64, Error> {
                self.conn.act(|s, now| s.flush(now))$($await)*
            }

            /// Ends the request being written (`"continue": false, "flush": true`): its audio
            /// and `Complete` follow.
            pub $($async)* fn finish(&self) -> Result<u64, Error> {
                self.conn.act(|s, now| s.finish_request(now))$($await)*
            }

            /// Sends `text` as a whole request in one message, or as the last piece of the
            /// request being written.
            pub $($async)* fn speak(&self, text: &str) -> Result<u64, Error> {
                self.conn.act(|s, now| s.speak(text, now))$($await)*
            }

            /// Starts closing the connection: sends a close frame (1000). The receiver then
            /// ends with `Closed` ([`CloseReason::Normal`]) once the server answers.
            pub $($async)* fn close(&self) -> Result<(), Error> {
                self.conn.act(|s, now| s.close(now))$($await)*
            }

            /// A continuation context with this id (1–128 characters), to push
            /// fragments to. Nothing is sent until the first `push`. Several contexts
            /// may be in flight; the server speaks them in the order they were opened.
            pub fn context(&self, id: &str) -> Result<TtsContext, Error> {
                let id = smallest_core::tts_live::ContextId::new(id)?;
                Ok(TtsContext {
                    sender: self.clone(),
                    id,
                })
            }

            /// Replaces the settings of the messages sent from now on (another voice or
            /// model for the next request); the idle timeout keeps the upgrade's value.
            pub fn set_config(&self, config: TtsLiveConfig) -> Result<(), Error> {
                self.conn.with(|s| s.set_config(config))?;
                Ok(())
            }

            /// Sends a WebSocket ping after every `interval` without client traffic; `None`
            /// turns keepalive off. The pings are sent while the receiver is polled. Whether
            /// the server counts a ping against its idle timeout is not documented: see
            /// [`smallest_core::tts_live`].
            pub fn set_keepalive(&self, interval: Option<Duration>) {
                self.conn.set_keepalive(interval);
            }

            /// Requests sent and not yet completed.
            pub fn open_requests(&self) -> usize {
                self.conn.with(|s| s.open_requests())
            }

            /// Whether the connection has closed.
            pub fn is_closed(&self) -> bool {
                self.conn.with(|s| s.is_closed())
            }
        }

        impl std::fmt::Debug for TtsLiveSender {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("TtsLiveSender")
                    .field("open_requests", &self.open_requests())
                    .field("closed", &self.is_closed())
                    .finish()
            }
        }

        impl SttLive {
            /// The two halves, for two tasks.
            pub fn split(self) -> (SttLiveSender, SttLiveReceiver) {
                (self.sender, self.receiver)
            }

            /// The writing half.
            pub fn sender(&self) -> &SttLiveSender {
                &self.sender
            }

            /// Sends audio (in the configured encoding and rate) as binary frames of at most
            /// 4096 bytes; returns the stream position (audio bytes sent so far, this chunk
            /// included). See [`SttLiveSender::send_audio`].
            pub $($async)* fn send_audio(&self, audio: &[u8]) -> Result<u64, Error> {
                self.sender.send_audio(audio)$($await)*
            }

            /// Asks for a final transcript of everything heard so far.
            pub $($async)* fn finalize(&self) -> Result<(), Error> {
                self.sender.finalize()$($await)*
            }

            /// Ends the stream: the last transcript (`is_last`) and a close 1000 follow.
            pub $($async)* fn close_stream(&self) -> Result<(), Error> {
                self.sender.close_stream()$($await)*
            }

            /// Abandons the stream with a close frame (1000).
            pub $($async)* fn close(&self) -> Result<(), Error> {
                self.sender.close()$($await)*
            }

            /// Turns keepalive pings on (`Some(interval)`) or off.
            pub fn set_keepalive(&self, interval: Option<Duration>) {
                self.sender.set_keepalive(interval);
            }

            /// The next event, or `None` after the `Closed` event.
            pub $($async)* fn recv(&mut self) -> Option<Result<SttLiveEvent, Error>> {
                self.receiver.recv()$($await)*
            }
        }

        impl SttLiveSender {
            /// Sends audio (in the configured encoding and rate) as binary frames of at most
            /// 4096 bytes (opus packets as given). The caller paces real-time audio.
            ///
            /// Returns the stream position: the audio bytes sent on this connection so far,
            /// including this chunk (empty audio sends nothing and returns the position
            /// unchanged). With the sample rate and the bytes per sample it is the audio
            /// time sent: for `linear16` (2 bytes per sample) `position / (2 * sample_rate)`
            /// seconds. See
            /// [`SttLiveSession::send_audio`](smallest_core::stt_live::SttLiveSession::send_audio).
            pub $($async)* fn send_audio(&self, audio: &[u8]) -> Result<u64, Error> {
                let audio = Bytes::copy_from_slice(audio);
                self.conn.act(|s, now| s.send_audio(audio, now))$($await)*
            }

            /// Asks for a final transcript of everything heard so far (`{"type":"finalize"}`);
            /// the stream stays open.
            pub $($async)* fn finalize(&self) -> Result<(), Error> {
                self.conn.act(|s, now| s.finalize(now))$($await)*
            }

            /// Ends the stream (`{"type":"close_stream"}`): the server flushes, sends the
            /// terminal transcript (`is_last: true`) and closes (1000). No audio may follow.
            pub $($async)* fn close_stream(&self) -> Result<(), Error> {
                self.conn.act(|s, now| s.close_stream(now))$($await)*
            }

            /// Abandons the stream: a close frame (1000) without waiting for the remaining
            /// transcripts. Prefer [`close_stream`](Self::close_stream).
            pub $($async)* fn close(&self) -> Result<(), Error> {
                self.conn.act(|s, now| s.close(now))$($await)*
            }

            /// Sends a WebSocket ping after every `interval` without client traffic; `None`
            /// turns keepalive off. The pings are sent while the receiver is polled.
            pub fn set_keepalive(&self, interval: Option<Duration>) {
                self.conn.set_keepalive(interval);
            }

            /// Whether the terminal `is_last` transcript has arrived.
            pub fn is_finished(&self) -> bool {
                self.conn.with(|s| s.is_finished())
            }

            /// Whether the connection has closed.
            pub fn is_closed(&self) -> bool {
                self.conn.with(|s| s.is_closed())
            }
        }

        impl std::fmt::Debug for SttLiveSender {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("SttLiveSender")
                    .field("finished", &self.is_finished())
                    .field("closed", &self.is_closed())
                    .finish()
            }
        }
    };
}
