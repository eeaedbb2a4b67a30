//! `scry query`: sends SQL to a running daemon and prints the result as a table, JSON or CSV.

use anyhow::{Context, bail};
use arrow::record_batch::RecordBatch;
use clap::{Args, ValueEnum};

/// Arguments of `scry query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The SQL to run (read-only).
    pub sql: String,
    /// The daemon's API address.
    #[arg(long, env = "SCRY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `scry query` prints rows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// A JSON array of row objects.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Runs the query and prints its result to stdout.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/query", args.server.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": args.sql }))
        .send()
        .await
        .with_context(|| format!("sending the query to {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await.context("reading the response")?;
    if !status.is_success() {
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = parsed["error"]["code"].as_str().unwrap_or("error");
        let message = parsed["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("query failed ({status}, {code}): {message}");
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(body.as_ref(), None)
        .context("decoding Arrow IPC")?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .context("decoding Arrow IPC")?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(schema)])?
            } else {
                arrow::util::pretty::pretty_format_batches(&batches)?
            };
            use std::io::Write;
            writeln!(out, "{table}")?;
        }
        Format::Json => {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            use std::io::Write;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                use std::io::Write;
                drop(w);
                writeln!(out, "{}", names.join(","))?;
            } else {
                for b in &batches {
                    w.write(b)?;
                }
            }
        }
    }
    Ok(())
}
